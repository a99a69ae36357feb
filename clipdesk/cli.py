"""The `clipdesk` command line: argparse → core calls. `main(argv)` returns the exit code.

Exit codes (scripts depend on them): 0 the run completed (even if some files failed),
1 the model could not be loaded, 2 usage errors (bad labels, no images, unknown options).
Results go to stdout; progress (tqdm) and notes go to stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from .console import drive
from .core.errors import ClipdeskError, LabelError, ModelLoadError

EXIT_OK, EXIT_MODEL, EXIT_USAGE = 0, 1, 2


class UsageError(ClipdeskError):
    """Bad arguments that argparse cannot see (no images, empty label list, ...)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipdesk", description="Zero-shot image classification and search with CLIP."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser("classify", help="score images against candidate labels")
    classify.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    labels = classify.add_mutually_exclusive_group(required=True)
    labels.add_argument("--labels", help='comma-separated labels, e.g. "cat,dog,car"')
    labels.add_argument("--labels-file", type=Path, help="a text file, one label per line")
    classify.add_argument("--templates", default="photo",
                          choices=["none", "photo", "ensemble", "imagenet80"])
    classify.add_argument("--top-k", type=_positive, default=None, help="labels shown per image")
    classify.add_argument("--multi-label", action="store_true",
                          help="score each label independently (images holding several things)")
    _add_model_options(classify)
    _add_run_options(classify)
    classify.set_defaults(handler=cmd_classify)

    search = commands.add_parser("search", help="rank images by a text query or an example image")
    search.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", help='text, e.g. "a yellow car at night"')
    query.add_argument("--image", type=Path, help="an example image")
    search.add_argument("--top-k", type=_positive, default=10)
    _add_model_options(search)
    _add_run_options(search)
    search.set_defaults(handler=cmd_search)

    models = commands.add_parser("models", help="architectures, pretrained tags and saved models")
    models.add_argument("--format", choices=["table", "json"], default="table")
    models.add_argument("--all", action="store_true", help="list every architecture, not just those with weights")
    models.set_defaults(handler=cmd_models)

    cache = commands.add_parser("cache", help="inspect or clear the embedding cache")
    cache.add_argument("action", choices=["info", "clear"])
    cache.set_defaults(handler=cmd_cache)

    try:
        from training.cli import register
    except ImportError:  # training is optional for the inference-only commands
        register = None
    if register is not None:
        register(commands)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    from .core.models import DEFAULT_ARCH, DEFAULT_PRETRAINED

    group = parser.add_argument_group("model")
    group.add_argument("--model", default=DEFAULT_ARCH, help=f"open_clip architecture, or 'demo' (default {DEFAULT_ARCH})")
    group.add_argument("--pretrained", default=None,
                       help=f"pretrained tag, checkpoint file or fine-tuned folder, 'none' or 'demo' (default {DEFAULT_PRETRAINED})")
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "gpu", "mps"])
    group.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                       help="auto: ONNX Runtime on CPU, torch on CUDA")
    group.add_argument("--precision", default="fp32", choices=["fp32", "int8"],
                       help="int8: dynamically quantised ONNX encoders (faster, slightly less accurate)")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=_positive, default=32)
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    parser.add_argument("--exact", action="store_true",
                        help="decode JPEGs at full size (slower; the default draft decode keeps the same top-1)")


# -- running jobs -------------------------------------------------------------------------------
def open_engine(args):
    from .core.engine import open_engine_job
    from .core.models import DEFAULT_PRETRAINED

    pretrained = args.pretrained
    if pretrained is None:
        pretrained = "demo" if args.model == "demo" else DEFAULT_PRETRAINED
    backend = args.backend
    return drive(open_engine_job(args.model, pretrained, args.device, backend, args.precision,
                                 use_cache=not args.no_cache))


def collect_images(paths: Sequence[str]):
    from .core.images import find_images

    files, errors = find_images(paths)
    if not files:
        missing = "; ".join(errors.values()) if errors else f"no images in {', '.join(paths)}."
        raise UsageError(f"Nothing to do: {missing}")
    return files, errors


def note(text: str) -> None:
    print(f"clipdesk: {text}", file=sys.stderr)


# -- classify -----------------------------------------------------------------------------------
def read_label_args(args) -> list[str]:
    from .core.prompts import read_labels_file, split_labels

    if args.labels is not None:
        return split_labels(args.labels)
    lines = read_labels_file(args.labels_file)
    return split_labels(lines[0]) if len(lines) == 1 else lines


def cmd_classify(args) -> int:
    raw_labels = read_label_args(args)
    files, missing = collect_images(args.paths)
    engine = open_engine(args)
    label_set = engine.label_set(raw_labels, args.templates)
    for text in label_set.notes:
        note(text)
    embedded = drive(engine.embed_job(files, args.batch_size, args.exact))
    scores = engine.score(embedded.features, label_set, multi_label=args.multi_label,
                          templates=args.templates)
    rows = classify_rows(files, missing, embedded, scores, args.top_k)
    write_rows(rows, label_set.names, args.format)
    failed = len(missing) + len(embedded.errors)
    if failed:
        note(f"{failed} file(s) could not be read; see their error entries.")
    return EXIT_OK


def classify_rows(files, missing, embedded, scores, top_k):
    """One dict per input file, in input order; failures carry only path and error."""
    index = {path: row for row, path in enumerate(embedded.paths)}
    rows = [{"path": str(path), "error": message} for path, message in missing.items()]
    for path in files:
        if path in embedded.errors:
            rows.append({"path": str(path), "error": embedded.errors[path]})
            continue
        row = index[path]
        label, score = scores.top(row, 1)[0]
        rows.append({
            "path": str(path), "label": label, "score": round(score, 6),
            "scores": {k: round(v, 6) for k, v in scores.as_dict(row).items()},
            "cosines": {k: round(float(c), 6) for k, c in zip(scores.labels, scores.cosines[row])},
            "top": [[name, round(p, 6)] for name, p in scores.top(row, top_k)],
        })
    return rows


def write_rows(rows: list[dict], labels: list[str], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            row.pop("top", None)
        json.dump(rows, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "label", "score", "error", *labels])
        for row in rows:
            probs = [row["scores"][label] for label in labels] if "scores" in row else [""] * len(labels)
            writer.writerow([row["path"], row.get("label", ""), row.get("score", ""), row.get("error", ""), *probs])
        sys.stdout.write(buffer.getvalue())
    else:
        _write_table(rows)


def _write_table(rows: list[dict]) -> None:
    width = min(60, max((len(_short_path(row["path"])) for row in rows), default=4))
    for row in rows:
        name = _short_path(row["path"]).ljust(width)
        if "error" in row:
            print(f"{name}  ERROR  {row['error']}")
        else:
            shown = "  ".join(f"{label} {p:6.1%}" for label, p in row["top"])
            print(f"{name}  {shown}")


def _short_path(path: str) -> str:
    return path if len(path) <= 60 else "…" + path[-59:]


# -- search -------------------------------------------------------------------------------------
def cmd_search(args) -> int:
    files, missing = collect_images(args.paths)
    engine = open_engine(args)
    embedded = drive(engine.embed_job(files, args.batch_size, args.exact))
    if args.query is not None:
        ranking = engine.search_text(args.query, embedded.features, args.top_k)
    else:
        ranking = engine.search_image(engine.embed_image(args.image), embedded.features, args.top_k)
    hits = [{"rank": n + 1, "path": str(embedded.paths[i]), "score": round(c, 6)}
            for n, (i, c) in enumerate(ranking)]
    errors = [{"path": str(p), "error": m} for p, m in {**missing, **embedded.errors}.items()]
    if args.format == "json":
        json.dump(hits + errors, sys.stdout, ensure_ascii=False, indent=1)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(["rank", "path", "score", "error"])
        for hit in hits:
            writer.writerow([hit["rank"], hit["path"], hit["score"], ""])
        for error in errors:
            writer.writerow(["", error["path"], "", error["error"]])
    else:
        for hit in hits:
            print(f"{hit['rank']:>3}  {hit['score']:+.4f}  {hit['path']}")
        for error in errors:
            note(error["error"])
    return EXIT_OK


# -- models and cache ---------------------------------------------------------------------------
def cmd_models(args) -> int:
    from .core.catalog import list_models

    entries = list_models(include_untagged=args.all)
    if args.format == "json":
        json.dump([entry.__dict__ for entry in entries], sys.stdout, indent=1, default=str)
        sys.stdout.write("\n")
        return EXIT_OK
    print("✓ = weights on this machine\n")
    for entry in entries:
        mark = "✓" if entry.available else " "
        print(f"{mark} {entry.arch:<32} {entry.pretrained:<36} {entry.kind}")
    return EXIT_OK


def cmd_cache(args) -> int:
    from .core.cache import EmbeddingCache
    from .core.paths import cache_dir

    cache = EmbeddingCache()
    exports = cache_dir() / "onnx"
    if args.action == "clear":
        info = cache.info()
        cache.clear()
        freed = _folder_size(exports)
        shutil.rmtree(exports, ignore_errors=True)  # re-exported on next use
        print(f"Cleared {sum(info.images.values())} image and {sum(info.texts.values())} label "
              f"embeddings from {info.path}, and {freed / 1e6:.0f} MB of ONNX exports.")
        return EXIT_OK
    info = cache.info()
    print(f"Cache: {info.path} ({info.size_bytes / 1e6:.1f} MB)")
    for model in sorted(set(info.images) | set(info.texts)):
        print(f"  {model}: {info.images.get(model, 0)} images, {info.texts.get(model, 0)} labels")
    if not info.images and not info.texts:
        print("  (empty)")
    if exports.is_dir():
        print(f"ONNX exports: {exports} ({_folder_size(exports) / 1e6:.0f} MB)")
    return EXIT_OK


def _folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed the usage message
        return int(exit_.code or 0)
    try:
        return args.handler(args)
    except ModelLoadError as error:
        print(f"clipdesk: {error}", file=sys.stderr)
        return EXIT_MODEL
    except (UsageError, LabelError, ClipdeskError) as error:
        print(f"clipdesk: {error}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `clipdesk ... | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return EXIT_OK
    except KeyboardInterrupt:
        print("clipdesk: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
