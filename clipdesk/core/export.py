"""Export the app's results as CSV or JSON, with every label's score, written atomically."""

from __future__ import annotations

import csv
import io
import json
import os
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
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
    return json.dumps(payload, indent=2, ensure_ascii=False)


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
    return str(value)


def export_results(session: Session, path: Path) -> None:
    """`.json` writes JSON; anything else CSV."""
    path = Path(path)
    text = to_json(session) if path.suffix.lower() == ".json" else to_csv(session)
    atomic_write_text(path, text)
