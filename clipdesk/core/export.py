"""Export the app's results as CSV or JSON, with every label's score, written atomically."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .session import Session


def result_rows(session: Session) -> list[dict[str, Any]]:
    """One dict per image: its decision, the top-2 evidence and the full score vector."""
    rows = []
    for row, item in enumerate(session.items):
        record: dict[str, Any] = {"path": str(item.path)}
        decision = session.decision(row)
        if item.status == "error":
            record["error"] = item.error
        elif decision is not None:
            record.update(
                label=decision.label, score=decision.score, top_label=decision.top_label,
                second_label=decision.second_label, second_score=decision.second_score,
                margin=decision.margin, unsure=decision.unsure,
                scores={name: float(p) for name, p in zip(session.score_labels, item.probs)},
            )
        else:
            record["error"] = "not classified yet"
        rows.append(record)
    return rows


def atomic_write_text(path: Path, text: str) -> None:
    """Temporary file + os.replace; the result gets the mode any new file would get (the umask,
    or the replaced file's own mode), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            os.chmod(temp, _mode_for(path))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


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
    return csv_cell(str(value))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")


def json_safe(value: Any) -> Any:
    """Strict JSON: NaN/inf become null, numpy scalars plain numbers, undecodable file-name
    bytes `\\xNN` text, so every consumer can parse what clipdesk writes."""
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, str):
        return _valid_unicode(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return json_safe(value.tolist())
    try:
        number = float(value)
    except (TypeError, ValueError):
        return json_safe(str(value))
    return number if math.isfinite(number) else None


def _valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        try:
            return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            return text.encode("utf-8", "backslashreplace").decode("utf-8")


def csv_cell(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (`=HYPERLINK(...)`, `+cmd|...`, `@SUM`)
    gets a leading apostrophe (OWASP's advice); numbers are left as numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _umask() -> int:
    try:  # Linux exposes it without the set-and-restore race of os.umask
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(os.stat(path).st_mode)  # overwriting keeps the file's own mode
    except OSError:
        return 0o666 & ~_umask()


def export_results(session: Session, path: Path) -> None:
    """`.json` writes JSON; anything else CSV."""
    path = Path(path)
    text = to_json(session) if path.suffix.lower() == ".json" else to_csv(session)
    atomic_write_text(path, text)
