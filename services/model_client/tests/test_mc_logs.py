"""Tests that the model server's logs keep request values out, uvicorn's tracebacks included."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import structlog
from evidence_features import FEATURE_NAMES
from evidence_model_client.artifact import ArtifactMetadata, ModelArtifact, compute_feature_stats
from evidence_model_client.logs import configure_logging
from evidence_model_client.protocol import encode_dataframe_split

from .conftest import make_training_data, start_server, stop_server

CANARY_VALUE = 987654.25
CANARY_TEXT = "CANARY-JANE-EXAMPLE"

# The artifact's model class must be importable by the server subprocess, so it lives in a
# module file that the test writes next to the artifact and puts on PYTHONPATH.
_CANARY_MODULE = f'''
import numpy as np


class CanaryModel:
    """Scores 0.25, but raises with the matrix maximum in the message if a row has the canary."""

    classes_ = np.array([0, 1])
    n_features_in_ = {len(FEATURE_NAMES)}

    def predict_proba(self, matrix):
        if (matrix == {CANARY_VALUE!r}).any():
            raise ValueError(f"{CANARY_TEXT} cannot score value {{matrix.max()!r}}")
        return np.tile([0.75, 0.25], (len(matrix), 1))
'''


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo configure_logging's root handler and structlog set-up after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def test_logs_stdlib_exception_keeps_type_only(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """uvicorn's traceback becomes one JSON line with the exception type and no message text."""
    configure_logging("info")

    try:
        raise ValueError(CANARY_TEXT)
    except ValueError:
        logging.getLogger("uvicorn.error").exception("Exception in ASGI application")

    output = capsys.readouterr()
    line = json.loads(output.out.strip().splitlines()[-1])
    assert line["event"] == "Exception in ASGI application"
    assert line["exception_type"] == "ValueError"
    assert line["level"] == "error"
    assert CANARY_TEXT not in output.out
    assert CANARY_TEXT not in output.err


def test_logs_structlog_exception_keeps_type_only(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """A structlog ``exception`` call also keeps only the exception type."""
    configure_logging("info")

    try:
        raise KeyError(CANARY_TEXT)
    except KeyError:
        structlog.get_logger("test").exception("scoring failed", rows=3)

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["exception_type"] == "KeyError"
    assert line["rows"] == 3
    assert CANARY_TEXT not in json.dumps(line)


def test_logs_drop_unlisted_keys(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    """Keys outside the allow-list are named in dropped_keys, and their values never appear."""
    configure_logging("info")

    structlog.get_logger("test").info("prediction served", rows=1, body=CANARY_TEXT)

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["rows"] == 1
    assert line["dropped_keys"] == ["body"]
    assert CANARY_TEXT not in json.dumps(line)


def test_logs_level_filters_stdlib(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """At level warning, uvicorn's info records are dropped and its errors kept."""
    configure_logging("warning")

    logging.getLogger("uvicorn.error").info("Started server process")
    logging.getLogger("uvicorn.error").error("boom")

    events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
    assert events == ["boom"]


def _save_canary_artifact(directory: Path, module_dir: Path) -> None:
    module_dir.mkdir()
    (module_dir / "canary_model.py").write_text(_CANARY_MODULE)
    sys.path.insert(0, str(module_dir))
    try:
        from canary_model import CanaryModel  # type: ignore[import-not-found]

        matrix, labels = make_training_data(n_rows=50, seed=2)
        metadata = ArtifactMetadata(
            model_version="V2",
            metrics={},
            feature_stats=compute_feature_stats(matrix),
            feature_importances=dict.fromkeys(FEATURE_NAMES, 1.0 / len(FEATURE_NAMES)),
            training_summary={"rows": 50, "positive_rate": float(labels.mean())},
        )
        ModelArtifact(model=CanaryModel(), metadata=metadata).save(directory)
    finally:
        sys.path.remove(str(module_dir))
        sys.modules.pop("canary_model", None)


@pytest.mark.slow
def test_server_unhandled_error_log_has_no_canary(tmp_path: Path) -> None:
    """An unhandled error in a real server logs its type as JSON, never the body's values."""
    _save_canary_artifact(tmp_path / "artifact", tmp_path / "modules")
    matrix = np.full((1, len(FEATURE_NAMES)), 1.0)
    matrix[0, 7] = CANARY_VALUE
    server = start_server(
        tmp_path / "artifact", tmp_path / "server.log", PYTHONPATH=str(tmp_path / "modules")
    )
    try:
        healthy = httpx.post(
            f"{server.base_url}/predict-proba",
            content=encode_dataframe_split(np.zeros_like(matrix)),
        )
        failed = httpx.post(
            f"{server.base_url}/predict-proba", content=encode_dataframe_split(matrix)
        )
    finally:
        stop_server(server)

    assert healthy.status_code == 200
    assert failed.status_code == 500
    log = server.log_path.read_text()
    assert str(CANARY_VALUE) not in log
    assert CANARY_TEXT not in log
    assert "Traceback" not in log
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if line.get("exception_type") == "ValueError"]
    assert len(errors) == 1
    assert errors[0]["event"].strip() == "Exception in ASGI application"
    assert errors[0]["level"] == "error"
