"""Export the app's results as CSV or JSON, with every label's score, written atomically."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import atomic_write_text
from .results import score_row
from .strict_json import PATH_BYTES_KEY, json_safe, path_from_record, path_record, valid_unicode

if TYPE_CHECKING:
    from .session import Session

# json_safe, the path records and valid_unicode live in strict_json (a floor below this module and
# atomic); they stay importable from here, where the CLI, training and older code look for them.
__all__ = ["PATH_BYTES_KEY", "atomic_write_text", "csv_cell", "export_results", "json_safe",
           "path_from_record", "path_record", "result_rows", "to_csv", "to_json", "valid_unicode"]


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
