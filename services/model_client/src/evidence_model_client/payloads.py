"""Server side of the inference protocol: parse every request body shape Snowflake accepts.

The Snowflake inference server accepts four bodies (``RestInferencePayloadFormat``)::

    {"data": [[0, v1, ..., v105], ...]}                       flat: row id, values in spec order
    {"data": [[0, {"MIB_HIT_COUNT": 2.0, ...}], ...]}         wide: row id, one object per row
    {"dataframe_split": {"index": [...], "columns": [...], "data": [[...], ...]}}
    {"dataframe_records": [{"MIB_HIT_COUNT": 2.0, ...}, ...]}

A body is wide when element 1 of its first row is an object, and flat otherwise. Split and
records may name ignored columns in a top-level ``"extra_columns"`` list. Values must be JSON
numbers, finite and within the float32 range, which tree models read, or null. A null is a
missing value (SQL NULL) and becomes NaN; the server then rejects it for a model that cannot
score missing values. Booleans and strings are rejected. Error messages name the row (its
0-based position in the request) and the column, never the value, because values are health
data.

Each response row starts with a row id: element 0 of a flat or wide row, the matching entry of
``dataframe_split.index`` (``0..n-1`` when the index is absent), or the 0-based position of a
``dataframe_records`` row. Row ids must be JSON integers in the signed 64-bit range, the values
of the integer index that pandas writes with ``to_json(orient="split")``, and must be unique.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import orjson
from evidence_features import FEATURE_NAMES

from evidence_model_client.protocol import MAX_MODEL_INPUT

__all__ = ["InvalidPayloadError", "ParsedPayload", "parse_payload"]

_FEATURE_SET = frozenset(FEATURE_NAMES)
_SHAPES = ("data", "dataframe_split", "dataframe_records")
_ALLOWED_TOP_LEVEL = frozenset({*_SHAPES, "params", "extra_columns"})
_SPLIT_KEYS = frozenset({"index", "columns", "data"})
_NUMBER_TYPES = frozenset({int, float})
# JSON null is SQL NULL: Snowflake's inference server reads the feature columns as nullable
# DOUBLE, so a null reaches the model as NaN.
_VALUE_TYPES = _NUMBER_TYPES | {type(None)}
_ROW_ID_MIN = -(2**63)
_ROW_ID_MAX = 2**63 - 1


class InvalidPayloadError(ValueError):
    """The request body cannot be scored; ``status`` is the HTTP status of the response.

    ``log_message`` is the message without the caller's own text (column names it sent), for
    the server log. It equals the message when the message quotes nothing from the request.
    """

    def __init__(self, message: str, *, status: int = 400, log_message: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.log_message = message if log_message is None else log_message


@dataclass(frozen=True, slots=True)
class ParsedPayload:
    """Row ids to echo in the response, and the (n, 105) float64 matrix in spec order."""

    row_ids: list[int]
    matrix: np.ndarray


def parse_payload(body: bytes, *, max_rows: int) -> ParsedPayload:
    """Parse and validate a ``/predict`` or ``/predict-proba`` request body.

    Raises:
        InvalidPayloadError: the body is not one of the accepted shapes, has the wrong columns,
            too many rows, an invalid or repeated row id, or a value that is neither a finite
            number nor null.
    """
    payload = _load_json(body)
    if not isinstance(payload, dict):
        msg = f"request body must be a JSON object with one of the keys {list(_SHAPES)}"
        raise InvalidPayloadError(msg)
    shapes = [key for key in _SHAPES if key in payload]
    if len(shapes) != 1:
        msg = f"request body must have exactly one of the keys {list(_SHAPES)}, got {shapes}"
        raise InvalidPayloadError(msg)
    unknown = sorted(set(payload) - _ALLOWED_TOP_LEVEL)
    if unknown:
        msg = f"unknown top-level keys {unknown[:5]}; allowed are {sorted(_ALLOWED_TOP_LEVEL)}"
        # The keys are the caller's text, so the log gets only their count.
        raise InvalidPayloadError(msg, log_message=f"{len(unknown)} unknown top-level keys")
    _check_params(payload.get("params"))
    extra = _extra_columns(payload.get("extra_columns"))
    shape = shapes[0]
    if shape == "data":
        if extra:
            msg = (
                "extra_columns applies to dataframe_split and dataframe_records bodies only; "
                "remove it or send the rows in one of those shapes"
            )
            raise InvalidPayloadError(msg)
        return _parse_data(payload["data"], max_rows)
    if shape == "dataframe_split":
        return _parse_split(payload["dataframe_split"], extra, max_rows)
    return _parse_records(payload["dataframe_records"], extra, max_rows)


def _load_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # orjson rejects the NaN and Infinity tokens that Python's json module writes. Parsing
    # again with the standard library lets the finiteness check name the column.
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        msg = f"request body is not valid JSON: {exc}"
        raise InvalidPayloadError(msg) from exc
    except ValueError as exc:
        # Python refuses to convert integers of more than 4,300 digits (sys.int_info).
        msg = "request body has an integer too long to convert; send values as float64 numbers"
        raise InvalidPayloadError(msg) from exc
    except RecursionError as exc:
        # orjson stops at 1024 levels of nesting, and the standard library overflows the stack.
        msg = "request body is nested too deeply for rows of numbers; send flat rows"
        raise InvalidPayloadError(msg) from exc


def _parse_data(rows: object, max_rows: int) -> ParsedPayload:
    rows = _row_list(rows, "data", max_rows)
    row_ids: list[int] = []
    for position, row in enumerate(rows):
        if not isinstance(row, list) or len(row) < 2:
            msg = f"data row {position} must be [row_id, values...] or [row_id, {{column: value}}]"
            raise InvalidPayloadError(msg)
        problem = _row_id_problem(row[0])
        if problem is not None:
            msg = f"data row {position} must start with an integer row id; {problem}"
            raise InvalidPayloadError(msg)
        row_ids.append(row[0])
    _check_unique_row_ids(row_ids, "data")
    if isinstance(rows[0][1], dict):
        records = []
        for position, row in enumerate(rows):
            if len(row) != 2 or not isinstance(row[1], dict):
                msg = f"data row {position} must be [row_id, {{column: value}}] like row 0"
                raise InvalidPayloadError(msg)
            records.append(row[1])
        return ParsedPayload(row_ids, _records_matrix(records, frozenset(), "data"))
    values = [row[1:] for row in rows]
    for position, row_values in enumerate(values):
        if len(row_values) == 1 and isinstance(row_values[0], dict):
            msg = (
                f"data row {position} is [row_id, {{column: value}}] but row 0 is "
                "[row_id, values...]; send every row in the same shape"
            )
            raise InvalidPayloadError(msg)
        if len(row_values) != len(FEATURE_NAMES):
            msg = (
                f"data row {position} has {len(row_values)} feature values; expected "
                f"{len(FEATURE_NAMES)} in FEATURE_NAMES order after the row id"
            )
            raise InvalidPayloadError(msg)
    return ParsedPayload(row_ids, _to_matrix(values, FEATURE_NAMES))


def _parse_split(split: object, extra: frozenset[str], max_rows: int) -> ParsedPayload:
    if not isinstance(split, dict):
        msg = 'dataframe_split must be an object with "columns" and "data"'
        raise InvalidPayloadError(msg)
    # pandas.read_json(orient="split") rejects other keys too, so a misspelt "index" fails here.
    unexpected = sorted(split.keys() - _SPLIT_KEYS)
    if unexpected:
        allowed = sorted(_SPLIT_KEYS)
        msg = f"dataframe_split has unknown keys {unexpected[:5]}; allowed are {allowed}"
        raise InvalidPayloadError(
            msg, log_message=f"dataframe_split has {len(unexpected)} unknown keys"
        )
    columns = split.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        msg = "dataframe_split.columns must be a list of column names"
        raise InvalidPayloadError(msg)
    _check_columns(columns, extra, "dataframe_split.columns")
    rows = _row_list(split.get("data"), "dataframe_split.data", max_rows)
    row_ids = _split_index(split, len(rows))
    for position, row in enumerate(rows):
        if not isinstance(row, list):
            kind = _json_kind(row)
            msg = (
                f"dataframe_split.data row {position} must be a list of {len(columns)} values, "
                f"one per column, got {kind}"
            )
            raise InvalidPayloadError(msg)
        if len(row) != len(columns):
            msg = (
                f"dataframe_split.data row {position} has {len(row)} values; "
                f"expected {len(columns)}, one per column"
            )
            raise InvalidPayloadError(msg)
    if tuple(columns) == FEATURE_NAMES:
        return ParsedPayload(row_ids, _to_matrix(rows, FEATURE_NAMES))
    # Reorder to spec order in Python so that ignored extra columns are never type-checked.
    column_position = {name: position for position, name in enumerate(columns)}
    order = [column_position[name] for name in FEATURE_NAMES]
    reordered = [[row[i] for i in order] for row in rows]
    return ParsedPayload(row_ids, _to_matrix(reordered, FEATURE_NAMES))


def _split_index(split: dict[str, Any], n_rows: int) -> list[int]:
    """Return the validated ``dataframe_split.index``, or ``0..n_rows-1`` when it is absent."""
    if "index" not in split:
        return list(range(n_rows))
    index = split["index"]
    if not isinstance(index, list):
        msg = (
            f"dataframe_split.index must be a list of {n_rows} integer row ids, one per data "
            f"row, got {_json_kind(index)}; omit it to number the rows 0..{n_rows - 1}"
        )
        raise InvalidPayloadError(msg)
    if len(index) != n_rows:
        msg = (
            f"dataframe_split.index has {len(index)} row ids for {n_rows} data rows; "
            "send one row id per data row"
        )
        raise InvalidPayloadError(msg)
    for position, row_id in enumerate(index):
        problem = _row_id_problem(row_id)
        if problem is not None:
            msg = f"dataframe_split.index entry {position} must be an integer row id; {problem}"
            raise InvalidPayloadError(msg)
    _check_unique_row_ids(index, "dataframe_split.index")
    return index


def _row_id_problem(row_id: object) -> str | None:
    """Describe why ``row_id`` cannot be a row id, or return None when it can.

    The description names the JSON type only, because a string row id may be a policy number.
    """
    if type(row_id) is int:
        if _ROW_ID_MIN <= row_id <= _ROW_ID_MAX:
            return None
        return "got an integer beyond the signed 64-bit range"
    # orjson reads integers beyond the unsigned 64-bit range as floats.
    if type(row_id) is float and row_id.is_integer() and abs(row_id) >= 2**63:
        return "got a number beyond the signed 64-bit range"
    return f"got {_json_kind(row_id)}"


def _check_unique_row_ids(row_ids: list[int], where: str) -> None:
    # pandas allows a repeated index, but the row id is the only link between a response row
    # and its request row, so repeats are rejected.
    if len(set(row_ids)) == len(row_ids):
        return
    counts = Counter(row_ids)
    repeated = [row_id for row_id, count in counts.items() if count > 1]
    msg = (
        f"{where} contains repeated row ids {repeated[:5]} ({len(repeated)} in all); "
        "give each row its own id"
    )
    # The ids are the caller's values, so the log gets only their count.
    raise InvalidPayloadError(msg, log_message=f"{where} repeats {len(repeated)} row ids")


def _json_kind(value: object) -> str:
    """Name the JSON type of a parsed value, for error messages that must not echo it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _parse_records(records: object, extra: frozenset[str], max_rows: int) -> ParsedPayload:
    rows = _row_list(records, "dataframe_records", max_rows)
    matrix = _records_matrix(rows, extra, "dataframe_records")
    return ParsedPayload(list(range(len(rows))), matrix)


def _records_matrix(records: list[Any], extra: frozenset[str], where: str) -> np.ndarray:
    rows = []
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            msg = f"{where} row {position} must be an object mapping column names to numbers"
            raise InvalidPayloadError(msg)
        if record.keys() - extra != _FEATURE_SET:
            _check_columns(list(record), extra, f"{where} row {position}")
        rows.append([record[name] for name in FEATURE_NAMES])
    return _to_matrix(rows, FEATURE_NAMES)


def _row_list(rows: object, where: str, max_rows: int) -> list[Any]:
    if not isinstance(rows, list) or not rows:
        msg = f"{where} must be a non-empty list of rows"
        raise InvalidPayloadError(msg)
    if len(rows) > max_rows:
        msg = f"{where} has {len(rows)} rows; at most {max_rows} are accepted per request"
        raise InvalidPayloadError(msg, status=413)
    return rows


def _check_params(params: object) -> None:
    if params is None or params == {}:
        return
    if not isinstance(params, dict):
        msg = f"params must be a JSON object, got {_json_kind(params)}; omit it or send {{}}"
        raise InvalidPayloadError(msg)
    msg = f"this model takes no inference parameters, got {sorted(params)[:5]}; remove them"
    raise InvalidPayloadError(msg, log_message=f"{len(params)} inference parameters")


def _extra_columns(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        msg = "extra_columns must be a list of column names"
        raise InvalidPayloadError(msg)
    features = [name for name in value if name in _FEATURE_SET]
    if features:
        msg = (
            f"extra_columns names feature columns {features[:5]}; the model reads every feature, "
            "so list only columns it should ignore"
        )
        raise InvalidPayloadError(msg)
    return frozenset(value)


def _check_columns(columns: Sequence[str], extra: frozenset[str], where: str) -> None:
    if len(set(columns)) != len(columns):
        # Counter, because columns.count() per column took seconds for 20,000 columns.
        duplicates = sorted(name for name, count in Counter(columns).items() if count > 1)
        msg = f"{where} repeats columns {duplicates[:5]}"
        raise InvalidPayloadError(msg, log_message=f"{where} repeats {len(duplicates)} columns")
    present = set(columns)
    unknown = sorted(present - _FEATURE_SET - extra)
    if unknown:
        if where.startswith("data "):
            # Snowflake reads extra keys of a wide row as inference parameters.
            hint = "remove them, because this model takes no inference parameters"
        else:
            hint = "list ignored columns in extra_columns"
        msg = f"{where} has unknown columns {unknown[:5]} ({len(unknown)} in all); {hint}"
        raise InvalidPayloadError(msg, log_message=f"{where} has {len(unknown)} unknown columns")
    missing = [name for name in FEATURE_NAMES if name not in present]
    if missing:
        msg = f"{where} lacks columns {missing[:5]} ({len(missing)} of {len(FEATURE_NAMES)})"
        raise InvalidPayloadError(msg)


def _to_matrix(rows: list[Any], columns: Sequence[str]) -> np.ndarray:
    """Return the float64 matrix of ``rows``, with NaN where a value is null (SQL NULL)."""
    # One C-level pass over all values finds any other type; only then look for where it is.
    types = set(map(type, chain.from_iterable(rows)))
    if not types <= _VALUE_TYPES:
        for position, row in enumerate(rows):
            for column, value in zip(columns, row, strict=True):
                if type(value) not in _VALUE_TYPES:
                    kind = type(value).__name__
                    msg = f"column {column} of row {position} must be a number or null, got {kind}"
                    raise InvalidPayloadError(msg)
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError as exc:
        position, column = _first_overflow(rows, columns)
        msg = f"column {column} of row {position} is an integer too large for a float64"
        raise InvalidPayloadError(msg) from exc
    # NaN fails the comparison, so one pass finds NaN, infinity and values beyond float32.
    in_range = np.abs(matrix) <= MAX_MODEL_INPUT
    if not in_range.all() and type(None) in types:
        # A null became NaN and is a missing value; only a NaN sent as a token is an error.
        in_range |= np.array([[value is None for value in row] for row in rows], dtype=bool)
    if not in_range.all():
        position, column_index = (int(i) for i in np.argwhere(~in_range)[0])
        where = f"column {columns[column_index]} of row {position}"
        if np.isfinite(matrix[position, column_index]):
            # Tree models such as GradientBoostingClassifier read their input as float32.
            msg = f"{where} is beyond the float32 range (+-3.4e38) that tree models accept"
        else:
            msg = f"{where} must be finite, got NaN/Infinity"
        raise InvalidPayloadError(msg)
    return matrix


def _first_overflow(rows: list[Any], columns: Sequence[str]) -> tuple[int, str]:
    for position, row in enumerate(rows):
        for column, value in zip(columns, row, strict=True):
            try:
                float(value)
            except OverflowError:
                return position, column
    return 0, columns[0]  # pragma: no cover  # NOTE: only called after numpy overflowed
