"""`classify`'s outputs beyond the printed rows: XMP keywords (and their undo) and a dataset file.

Kept apart from cli.py so the command's core stays short; both call core modules only.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path


def add_output_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("keywords and datasets")
    group.add_argument("--write-xmp", action="store_true",
                       help="write each image's label(s) as XMP keywords (a sidecar per image; "
                            "digiKam, Lightroom and darktable read them); undo with --undo-xmp")
    group.add_argument("--xmp-naming", choices=["append", "replace"], default="append",
                       help="sidecar names: append = IMG_1.jpg.xmp (digiKam, darktable), "
                            "replace = IMG_1.xmp (Lightroom)")
    group.add_argument("--xmp-hierarchy", default="clipdesk", metavar="NAME",
                       help='keywords go under NAME ("clipdesk|cat"); "" writes flat keywords only')
    group.add_argument("--xmp-embed", action="store_true",
                       help="write into JPEG/PNG/WebP files themselves instead of sidecars")
    group.add_argument("--undo-xmp", nargs="?", const="", default=None, metavar="JOURNAL",
                       help="undo the last --write-xmp (or the one a journal file records); "
                            "needs no PATH")
    group.add_argument("--export-dataset", type=Path, default=None, metavar="FILE.parquet",
                       help="also write images, labels, scores and embeddings as a Parquet file "
                            "that Hugging Face datasets loads with an image column")


def keyword_assignments(rows: Sequence[dict]) -> list[tuple[Path, list[tuple[str, float]]]]:
    """(image, [(label, score), …]) per classified row: multi-label rows give every label present."""
    pairs = []
    for row in rows:
        if "error" in row:
            continue
        names = row.get("labels") or [row["label"]]
        pairs.append((Path(row["path"]), [(name, float(row["scores"][name])) for name in names]))
    return pairs


def write_outputs(args, rows: Sequence[dict], labels: Sequence[str], embedded, note) -> None:
    """Keywords and the dataset file, after the rows were printed (a failure here loses no output)."""
    from .core.jobs import run_job

    if args.write_xmp:
        from .core.keywords import KeywordOptions, write_keywords_job

        options = KeywordOptions(args.xmp_hierarchy, args.xmp_naming, args.xmp_embed)
        record = run_job(write_keywords_job(keyword_assignments(rows), options))
        for text in record.notes:
            note(text)
        note(record.message() + " Undo: clipdesk classify --undo-xmp")
    if args.export_dataset is not None:
        from .core.dataset import export_parquet

        vectors = {str(path): embedded.features[i] for i, path in enumerate(embedded.paths)}
        count = export_parquet(rows, labels, args.export_dataset, vectors)
        note(f"Wrote {count} image(s) to {args.export_dataset}.")


def undo_keywords(args, note) -> None:
    from .core.keywords import undo_keywords

    result = undo_keywords(journal=Path(args.undo_xmp) if args.undo_xmp else None)
    for text in result.kept:
        note(f"kept: {text}")
    note(result.message())
