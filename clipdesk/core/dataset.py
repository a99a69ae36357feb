"""Results and embeddings as one Parquet file that Hugging Face `datasets` loads as a dataset with
an image column (`load_dataset("parquet", data_files=...)` or `Dataset.from_parquet`), and that
pandas, Polars, DuckDB and FiftyOne's Parquet importers read as a table.

Written with pyarrow (already a dependency of the scale extra and of `datasets` itself), with the
`huggingface` schema metadata that tells `datasets` which column is an Image and which a ClassLabel,
so nothing has to be converted on the other side. Images are stored by value (their bytes), so the
file stays valid when the folder moves; `path` keeps where each one came from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ClipdeskError
from .safeio import read_bytes_guarded


class DatasetExportError(ClipdeskError):
    """The dataset cannot be written (pyarrow missing, nothing to export)."""


def features(labels: Sequence[str], dim: int | None) -> dict:
    """The `datasets` feature description stored in the Parquet schema."""
    value = {"dtype": "float32", "_type": "Value"}
    spec = {
        "image": {"_type": "Image"},
        "path": {"dtype": "string", "_type": "Value"},
        "label": {"names": list(labels), "_type": "ClassLabel"},
        "score": value,
        "scores": {"feature": value, "length": len(labels), "_type": "List"},
    }
    if dim:
        spec["embedding"] = {"feature": value, "length": dim, "_type": "List"}
    return spec


def export_parquet(rows: Sequence[dict], labels: Sequence[str], path: Path,
                   embeddings: dict[str, np.ndarray] | None = None) -> int:
    """Write the classified rows (the CLI's/API's dicts; error rows are left out) to `path`.
    `scores` follow `labels`' order; returns how many images were written."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise DatasetExportError("Exporting a dataset needs pyarrow: pip install pyarrow.") from error
    index = {name: i for i, name in enumerate(labels)}
    # the window's multi-label/unsure rows name their best label in `top_label`
    good = [{**row, "label": row["label"] if row.get("label") in index else row.get("top_label")}
            for row in rows if "error" not in row]
    good = [row for row in good if row["label"] in index]
    if not good:
        raise DatasetExportError("There are no classified images to export.")
    dim = next(iter(embeddings.values())).shape[-1] if embeddings else None
    columns = {
        "image": [{"bytes": read_bytes_guarded(Path(r["path"]), "image"), "path": Path(r["path"]).name}
                  for r in good],
        "path": [r["path"] for r in good],
        "label": pa.array([index[r["label"]] for r in good], pa.int64()),
        "score": pa.array([float(r["score"]) for r in good], pa.float32()),
        "scores": pa.array([[float(r["scores"].get(name, 0.0)) for name in labels] for r in good],
                           pa.list_(pa.float32(), len(labels))),
    }
    if dim:
        columns["embedding"] = pa.array([np.asarray(embeddings[r["path"]], np.float32) for r in good],
                                        pa.list_(pa.float32(), dim))
    table = pa.table(columns)
    meta = {"info": {"features": features(labels, dim)}}
    table = table.replace_schema_metadata({"huggingface": json.dumps(meta)})
    with atomic_path(path) as temp:
        pq.write_table(table, temp)
    return len(good)
