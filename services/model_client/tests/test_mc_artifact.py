"""Tests for the model artifact format: save, load, validation and the spec-hash check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from evidence_features import FEATURE_NAMES, FEATURE_SPEC_HASH
from evidence_model_client.artifact import (
    ArtifactMetadata,
    FeatureStats,
    ModelArtifact,
    check_spec_hash,
    compute_feature_stats,
)
from evidence_model_client.errors import ArtifactError, SpecHashMismatchError

from .conftest import train_artifact


def _rewrite_metadata(directory: Path, **changes: object) -> None:
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            del metadata[key]
        else:
            metadata[key] = value
    path.write_text(json.dumps(metadata))


def test_artifact_round_trip_keeps_metadata_and_model(tmp_path: Path) -> None:
    """A saved artifact loads back with equal metadata and the same predictions."""
    saved = train_artifact(tmp_path)
    loaded = ModelArtifact.load(tmp_path)
    assert saved.metadata.to_json() == loaded.metadata.to_json()
    x = np.zeros((2, len(FEATURE_NAMES)))
    np.testing.assert_array_equal(saved.model.predict_proba(x), loaded.model.predict_proba(x))
    assert loaded.metadata.registry_version == "REGISTRY_V2"
    assert loaded.metadata.model_name == "EVIDENCE_RISK_MODEL"
    assert loaded.metadata.feature_spec_hash == FEATURE_SPEC_HASH


def test_artifact_metadata_file_has_contract_keys(tmp_path: Path) -> None:
    """metadata.json contains exactly the keys that serving and the dashboard read."""
    train_artifact(tmp_path)
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    expected = {
        "model_name",
        "model_version",
        "feature_names",
        "feature_spec_hash",
        "feature_spec_version",
        "created_at",
        "metrics",
        "feature_stats",
        "feature_importances",
        "training_summary",
    }
    assert expected == set(metadata)
    assert set(metadata["feature_stats"]["MIB_HIT_COUNT"]) == {
        "mean",
        "std",
        "min",
        "max",
        "bin_edges",
        "bin_fractions",
    }


def test_artifact_load_missing_directory_names_fix(tmp_path: Path) -> None:
    """Loading an empty directory names the missing file and how to create it."""
    with pytest.raises(ArtifactError, match=r"no metadata\.json .*evidence-train"):
        ModelArtifact.load(tmp_path)


def test_artifact_load_missing_model_file(tmp_path: Path) -> None:
    """A directory with metadata but no model.joblib is rejected."""
    train_artifact(tmp_path)
    (tmp_path / "model.joblib").unlink()
    with pytest.raises(ArtifactError, match=r"no model\.joblib"):
        ModelArtifact.load(tmp_path)


def test_artifact_load_corrupt_model_file(tmp_path: Path) -> None:
    """An unreadable model file raises ArtifactError, not a pickle error."""
    train_artifact(tmp_path)
    (tmp_path / "model.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ArtifactError, match=r"cannot load .*model\.joblib"):
        ModelArtifact.load(tmp_path)


def test_artifact_load_invalid_json(tmp_path: Path) -> None:
    """A metadata file that is not JSON names the line and column."""
    train_artifact(tmp_path)
    (tmp_path / "metadata.json").write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        ModelArtifact.load(tmp_path)


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"metrics": None}, r"missing keys \['metrics'\]"),
        ({"model_version": "V 2"}, "model_version must match"),
        ({"created_at": "yesterday"}, "created_at must be an ISO 8601"),
        ({"created_at": "2026-01-01T00:00:00"}, "UTC offset"),
        ({"feature_names": ["A", "A"]}, "duplicates"),
        ({"training_summary": {"rows": 0, "positive_rate": 0.1}}, "rows must be a positive"),
        (
            {"training_summary": {"rows": 5, "positive_rate": 2}},
            r"positive_rate must be in \[0, 1\]",
        ),
        ({"feature_importances": {"MIB_HIT_COUNT": 1.0}}, "one entry per feature name"),
    ],
)
def test_artifact_load_invalid_metadata(
    tmp_path: Path, changes: dict[str, object], pattern: str
) -> None:
    """Each invalid metadata value is rejected with a message naming the key."""
    train_artifact(tmp_path)
    _rewrite_metadata(tmp_path, **changes)
    with pytest.raises(ArtifactError, match=pattern):
        ModelArtifact.load(tmp_path)


@pytest.mark.parametrize(
    ("stats", "pattern"),
    [
        ({"bin_edges": [0, 1], "bin_fractions": [0.5, 0.5]}, "exactly one more edge"),
        ({"bin_edges": [1, 0], "bin_fractions": [1.0]}, "ascending"),
        ({"bin_edges": [0, 1, 2], "bin_fractions": [0.5, 0.4]}, "sum to 1"),
        ({"std": -1.0}, r"std must be >= 0"),
        ({"mean": "x"}, "must be a finite number"),
    ],
)
def test_feature_stats_invalid_bins(stats: dict[str, object], pattern: str) -> None:
    """Inconsistent feature stats name the feature and the problem."""
    raw: dict[str, object] = {
        "mean": 0.0,
        "std": 1.0,
        "min": 0.0,
        "max": 1.0,
        "bin_edges": [0.0, 1.0],
        "bin_fractions": [1.0],
        **stats,
    }
    with pytest.raises(ArtifactError, match=pattern):
        FeatureStats.from_json("MIB_HIT_COUNT", raw)


def test_artifact_save_rejects_wrong_model_width(tmp_path: Path) -> None:
    """A model fitted on another number of columns cannot be saved."""
    artifact = train_artifact(tmp_path / "ok")
    model = artifact.model
    model.n_features_in_ = 3
    with pytest.raises(ArtifactError, match="fitted on 3 features"):
        ModelArtifact(model=model, metadata=artifact.metadata).save(tmp_path / "bad")


def test_artifact_save_rejects_model_without_predict_proba(tmp_path: Path) -> None:
    """Only classifiers with predict_proba are accepted."""
    artifact = train_artifact(tmp_path / "ok")
    with pytest.raises(ArtifactError, match="no predict_proba"):
        ModelArtifact(model=object(), metadata=artifact.metadata).save(tmp_path / "bad")


def test_check_spec_hash_mismatch_names_both_hashes(tmp_path: Path) -> None:
    """An artifact trained on another spec fails the check with both hashes in the message."""
    artifact = train_artifact(tmp_path, spec_hash="0000000000000000")
    with pytest.raises(SpecHashMismatchError, match=f"'0000000000000000'.*'{FEATURE_SPEC_HASH}'"):
        check_spec_hash(artifact.metadata)


def test_check_spec_hash_equal_passes(tmp_path: Path) -> None:
    """An artifact trained on the installed spec passes the check."""
    artifact = train_artifact(tmp_path)
    check_spec_hash(artifact.metadata)


def test_compute_feature_stats_hand_computed() -> None:
    """Mean, std, range and bins match values computed by hand."""
    matrix = np.zeros((4, len(FEATURE_NAMES)))
    matrix[:, 0] = [0.0, 0.0, 0.0, 4.0]
    stats = compute_feature_stats(matrix, n_bins=2)
    first = stats[FEATURE_NAMES[0]]
    assert first.mean == 1.0
    assert first.std == pytest.approx(np.sqrt(3.0))
    assert (first.min, first.max) == (0.0, 4.0)
    # Quantiles at 0, 0.5 and 1 are 0, 0 and 4; the distinct edges are [0, 4].
    assert first.bin_edges == (0.0, 4.0)
    assert first.bin_fractions == (1.0,)
    constant = stats[FEATURE_NAMES[1]]
    assert constant.bin_edges == (0.0, 0.0)
    assert constant.bin_fractions == (1.0,)


def test_compute_feature_stats_rejects_nan() -> None:
    """NaN in the training matrix is named by column."""
    matrix = np.zeros((3, len(FEATURE_NAMES)))
    matrix[1, 2] = np.nan
    with pytest.raises(ValueError, match=f"column {FEATURE_NAMES[2]} contains NaN"):
        compute_feature_stats(matrix)


@pytest.mark.parametrize("value", [float("nan"), np.float32(0.5)])
def test_artifact_save_rejects_unserialisable_metrics(tmp_path: Path, value: object) -> None:
    """NaN or a numpy float32 in metrics raises ArtifactError naming the fix."""
    artifact = train_artifact(tmp_path / "ok")
    metadata = ArtifactMetadata(
        model_version="V2",
        metrics={"roc_auc": value},
        feature_stats=artifact.metadata.feature_stats,
        feature_importances=artifact.metadata.feature_importances,
        training_summary=artifact.metadata.training_summary,
    )
    with pytest.raises(ArtifactError, match="convert values to finite Python floats"):
        ModelArtifact(model=artifact.model, metadata=metadata).save(tmp_path / "bad")
    assert not (tmp_path / "bad" / "metadata.json").exists()
