"""Export the app's results as CSV or JSON, with every label's score, written atomically."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write_text
from .results import score_row

if TYPE_CHECKING:
    from .session import Session

__all__ = ["atomic_write_text", "csv_cell", "export_results", "json_safe", "path_from_record",
           "path_record", "result_rows", "to_csv", "to_json", "valid_unicode"]
PATH_BYTES_KEY = "path_bytes_b64"


def result_rows(session: Session) -> list[dict[str, Any]]:
    """One dict per image: its decision, the top-2 evidence and the full score vector."""
    rows = []
    for row, item in enumerate(session.items):
        record: dict[str, Any] = {"path": str(item.path)}
        decision = session.decision(row)
        if item.status == "error":
            record["error"] = item.error
            rows.append(record)
            continue
        # core/results.py judges the scores as for the CLI and the API: NaN is an error, not a label
        checked = score_row(session.score_labels, item.probs, where=item.path) if decision is not None else None
        if checked is None:
            record["error"] = "not classified yet"
        elif checked.error is not None:
            record["error"] = checked.error
        else:
            record.update(
                label=decision.label, score=decision.score, top_label=decision.top_label,
                second_label=decision.second_label, second_score=decision.second_score,
                margin=decision.margin, unsure=decision.unsure, scores=checked.scores,
            )
        rows.append(record)
    return rows


def to_json(session: Session) -> str:
    payload = {
        "labels": session.label_names(),
        "templates": session.templates,
        "multi_label": session.multi_label,
        "threshold": session.threshold,
        "margin": session.margin,
        "results": result_rows(session),
    }
    return json.dumps(json_safe(payload), indent=2, ensure_ascii=False, allow_nan=False)


def to_csv(session: Session) -> str:
    """Columns: path, label, score, second_label, second_score, margin, unsure, error, then one
    `score:<label>` column per label, so a spreadsheet sees the whole vector."""
    names = list(session.score_labels)
    fixed = ["path", "label", "score", "second_label", "second_score", "margin", "unsure", "error"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(fixed + [f"score:{name}" for name in names])
    for record in result_rows(session):
        scores = record.get("scores", {})
        writer.writerow([_cell(record.get(key, "")) for key in fixed]
                        + [_cell(scores.get(name, "")) for name in names])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return csv_cell(valid_unicode(str(value)))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def json_safe(value: Any) -> Any:
    """Strict JSON: NaN/inf become null, numpy scalars plain numbers, undecodable file-name
    bytes `\\xNN` text, so every consumer can parse what clipdesk writes.

    `\\xNN` text is for reading, and ambiguous (a name may really contain a backslash), so an
    object whose `path` is not valid UTF-8 also gets `path_bytes_b64`: the name's exact bytes.
    """
    if isinstance(value, dict):
        safe = {json_safe(k): json_safe(v) for k, v in value.items()}
        exact = _exact_bytes(value["path"]) if "path" in value else None
        if exact is not None:
            safe.setdefault(PATH_BYTES_KEY, exact)
        return safe
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, str):
        return valid_unicode(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_safe(value.tolist())
    try:
        number = float(value)
    except (TypeError, ValueError):
        return json_safe(str(value))
    return number if math.isfinite(number) else None


def valid_unicode(text: str) -> str:
    """`text` itself when it is valid Unicode, else with each undecodable byte as `\\xNN`."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _exact_bytes(path: Any) -> str | None:
    """Base64 of a file name's bytes when they are not valid UTF-8 (else None)."""
    if not isinstance(path, (bytes, str, os.PathLike)):
        return None
    try:
        raw = os.fsencode(path)  # str: surrogate escapes back to the bytes the file system gave
    except UnicodeEncodeError:  # a lone surrogate no file system produced: no bytes to keep
        return None
    try:
        raw.decode("utf-8")
        return None
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")


def path_record(path: str | os.PathLike) -> str | dict[str, str]:
    """A path for a JSON list clipdesk reads back: the plain text when it is valid UTF-8, else
    `{"path": readable text, "path_bytes_b64": exact bytes}` (strict JSON either way)."""
    text = os.fspath(path)
    exact = _exact_bytes(text)
    return {"path": valid_unicode(os.fsdecode(text)), PATH_BYTES_KEY: exact} if exact else text


def path_from_record(record: Any) -> str | None:
    """The exact path back from `path_record` (or from a result row); None if it holds none."""
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        return None
    if isinstance(record.get(PATH_BYTES_KEY), str):
        try:
            return os.fsdecode(base64.b64decode(record[PATH_BYTES_KEY], validate=True))
        except (binascii.Error, ValueError):
            return None
    return record["path"] if isinstance(record.get("path"), str) else None


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (`=HYPERLINK(...)`, `+cmd|...`, `@SUM`)
    gets a leading apostrophe (OWASP's advice); numbers are left as numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def export_results(session: Session, path: Path) -> None:
    """`.json` writes JSON; anything else CSV."""
    path = Path(path)
    text = to_json(session) if path.suffix.lower() == ".json" else to_csv(session)
    atomic_write_text(path, text)
