"""What the command lines share: exit codes, notes, opening the engine, listing images, labels and
the rows `classify` prints. `clipdesk/cli.py` and `clipdesk/scale/cli.py` both build on this
module (a floor below them), so neither imports the other's insides.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Sequence

from .console import drive, safe_text
from .core.errors import ClipdeskError

EXIT_OK, EXIT_MODEL, EXIT_USAGE = 0, 1, 2


class UsageError(ClipdeskError):
    """Bad arguments that argparse cannot see (no images, empty label list, ...)."""


def note(text: str) -> None:
    """One `clipdesk:` line on stderr, escaped for the terminal."""
    print(f"clipdesk: {safe_text(text)}", file=sys.stderr)


def dump_json(data) -> None:
    """Strict JSON on stdout: NaN/inf become null, undecodable names become text."""
    from .core.export import json_safe

    sys.stdout.write(json.dumps(json_safe(data), ensure_ascii=False, indent=1, allow_nan=False))
    sys.stdout.write("\n")


def csv_row(cells) -> list:
    """CSV cells safe for spreadsheets (no formula injection) and terminals."""
    from .core.export import csv_cell

    return [csv_cell(safe_text(c) if isinstance(c, str) else c) for c in cells]


# -- running jobs -------------------------------------------------------------------------------
def open_engine(args):
    """The engine for --model/--pretrained/--device/--backend/--precision (and --no-cache)."""
    from .core.engine import open_engine_job

    # None = not given: `resolve_source` fills in the default, or the model folder's architecture.
    return drive(open_engine_job(args.model, args.pretrained, args.device, args.backend, args.precision,
                                 use_cache=not args.no_cache))


def collect_images(paths: Sequence[str], pair_raw: bool = True):
    """(files, {path: why it was skipped}); nothing to do at all is a usage error."""
    from .core.images import scan_images

    if any(not str(path).strip() for path in paths):  # Path("") is ".": never scan by accident
        raise UsageError("An empty path was given; name image files or folders.")
    scan = scan_images(paths, pair_raw)
    for text in scan.notes():  # skipped file types, RAW pairs, missing decoders: never silent
        note(text)
    files, errors = scan.files, scan.errors
    if not files:
        missing = "; ".join(errors.values()) if errors else f"no images in {', '.join(paths)}."
        raise UsageError(f"Nothing to do: {missing}")
    return files, errors


# -- labels -------------------------------------------------------------------------------------
def read_label_args(args) -> list[str] | None:
    """--labels or --labels-file; None when neither was given (the model's own classes)."""
    from .core.prompts import read_labels_file, split_labels

    if args.labels is not None:
        return split_labels(args.labels)
    if args.labels_file is None:
        return None  # the model's own classes, once it is loaded (see model_labels)
    lines = read_labels_file(args.labels_file)
    return split_labels(lines[0]) if len(lines) == 1 else lines


def model_labels(loaded, raw_labels, templates):
    """(labels, templates): no --labels means a fine-tuned model's own classes; the templates are
    `prompts.default_templates` (the one rule the API, Ray and the window use too)."""
    from .core.prompts import default_templates

    templates = default_templates(templates, loaded.metadata)
    if raw_labels is not None:
        return raw_labels, templates
    if not loaded.class_names:
        raise UsageError("No labels given: use --labels or --labels-file "
                         "(only a fine-tuned model brings its own classes).")
    return loaded.class_names, templates


# -- classify's rows ----------------------------------------------------------------------------
def classify_rows(files, missing, embedded, scores, top_k, threshold: float | None = None) -> list[dict]:
    """One dict per input file, in input order (core/results.py builds each): failures carry only
    path and error; multi-label rows also carry `labels`, those at or above `threshold`."""
    from .core.results import rows_in_input_order

    return [row.as_dict(str(path))
            for path, row in rows_in_input_order(files, missing, embedded, scores, top_k, threshold)]


def require_some_valid_score(embedded, scores) -> None:
    """NaN for every image that was read means the model, not the pictures, is broken: exit 1."""
    from .core.errors import ModelLoadError

    if len(embedded.paths) and not scores.valid_rows().any():
        raise ModelLoadError("The model gives no valid score (NaN) for any image: its weights or "
                             "its few-shot head are damaged.")


def write_rows(rows: list[dict], labels: list[str], fmt: str) -> None:
    """classify's rows as JSON, CSV or a table on stdout."""
    if fmt == "json":
        for row in rows:
            row.pop("top", None)
        dump_json(rows)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(csv_row(["path", "label", "score", "error", *labels]))
        for row in rows:
            probs = [row["scores"][label] for label in labels] if "scores" in row else [""] * len(labels)
            label = "; ".join(row["labels"]) if "labels" in row else row.get("label", "")
            writer.writerow(csv_row([row["path"], label, row.get("score", ""),
                                     row.get("error", ""), *probs]))
        sys.stdout.write(buffer.getvalue())
    else:
        _write_table(rows)


def _write_table(rows: list[dict]) -> None:
    width = min(60, max((len(_short_path(row["path"])) for row in rows), default=4))
    for row in rows:
        name = _short_path(row["path"]).ljust(width)
        if "error" in row:
            print(f"{name}  ERROR  {safe_text(row['error'])}")
        else:
            shown = "  ".join(f"{safe_text(label)} {p:6.1%}" for label, p in row["top"])
            if "labels" in row:  # multi-label: what is present first, then the evidence
                shown = f"[{', '.join(safe_text(label) for label in row['labels'])}]  {shown}"
            print(f"{name}  {shown}")


def _short_path(path: str) -> str:
    path = safe_text(path)
    return path if len(path) <= 60 else "…" + path[-59:]


def report_failures(rows: list[dict]) -> None:
    """The closing note of classify: how many files became error entries."""
    failed = sum("error" in row for row in rows)
    if failed:
        note(f"{failed} file(s) could not be read; see their error entries.")
