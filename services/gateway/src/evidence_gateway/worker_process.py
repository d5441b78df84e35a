"""Stop a uvicorn worker process when the uvicorn process that started it dies.

With ``GATEWAY_WORKERS`` above 1, uvicorn starts the workers with multiprocessing's spawn method
and passes them the listening socket. If the parent is killed with SIGKILL (or by the kernel's
out-of-memory killer), its workers keep running and keep the port. A supervisor that restarts
the gateway then finds the port taken, and the orphaned workers serve on without anyone
watching them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal

from evidence_gateway.stack.orphan_guard import set_parent_death_signal

__all__ = ["stop_with_parent_process"]


def stop_with_parent_process() -> bool:
    """Make this process receive SIGTERM when its multiprocessing parent exits.

    Does nothing in a process that multiprocessing did not start, such as a gateway with one
    worker, which runs the app in the uvicorn process itself.

    Returns:
        True when this process has a multiprocessing parent and now follows it.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return False
    set_parent_death_signal(signal.SIGTERM)
    # A parent that died before the prctl call sent no signal, so check it once by hand.
    if not parent.is_alive():
        os.kill(os.getpid(), signal.SIGTERM)
    return True
