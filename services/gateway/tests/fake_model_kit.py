"""A fake model service on 127.0.0.1 for gateway tests, with responses set by a subclass."""

from __future__ import annotations

import asyncio


class FakeModelService:
    """An HTTP/1.1 server on 127.0.0.1 that responds to each request with ``_answer``."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                length = 0
                for line in header_lines:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                status, answer = self._answer(request_line, body)
                response = (
                    f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer)}\r\n\r\n".encode()
                    + answer
                )
                writer.write(response)
                await writer.drain()
                await self._after_response(writer, response)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def _answer(self, request_line: str, body: bytes) -> tuple[int, bytes]:
        """Return the status and JSON body for one request."""
        raise NotImplementedError

    async def _after_response(self, writer: asyncio.StreamWriter, response: bytes) -> None:
        """Run after each response is sent; a subclass may write more bytes to ``writer``."""
