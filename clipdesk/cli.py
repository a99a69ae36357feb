"""The `clipdesk` command line: argparse → core calls. `main(argv)` returns the exit code.

Exit codes (scripts depend on them): 0 the run completed (even if some files failed),
1 the model could not be loaded, 2 usage errors (bad labels, no images, unknown options).
Results go to stdout; progress (tqdm) and notes go to stderr. Any failure is one `clipdesk:` line,
never a traceback (`--debug` or CLIPDESK_DEBUG=1 shows it); JSON output is always strict JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import logging
import os
import shutil
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli_outputs import add_output_options, undo_keywords, write_outputs
from .commands import (
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    classify_rows,
    collect_images,
    csv_row,
    dump_json,
    model_labels,
    note,
    open_engine,
    read_label_args,
    report_failures,
    require_some_valid_score,
    write_rows,
)
from .console import drive, safe_text
from .core.errors import ClipdeskError, ImageLoadError, LabelError, ModelLoadError
from .options import (
    add_model_options,
    add_templates_option,
    batch_size,
    fraction_up_to_1,
    positive_int,
)
from .scale.cli import register as register_scale

__all__ = ["EXIT_MODEL", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clipdesk", description="Zero-shot image classification and search with CLIP."
    )
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also CLIPDESK_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser("classify", help="score images against candidate labels")
    classify.add_argument("paths", nargs="*", metavar="PATH", help="image files or folders")
    labels = classify.add_mutually_exclusive_group()  # neither: a fine-tuned model's own classes
    labels.add_argument("--labels", help='comma-separated labels, e.g. "cat,dog,car"')
    labels.add_argument("--labels-file", type=Path, help="a text file, one label per line")
    add_templates_option(classify)
    classify.add_argument("--top-k", type=positive_int, default=None, help="labels shown per image")
    classify.add_argument("--multi-label", action="store_true",
                          help="several labels can be present: the whole picture and its four quarters "
                               "are scored (5 image embeddings each, cached); rows get a 'labels' list")
    classify.add_argument("--threshold", type=fraction_up_to_1, default=None, metavar="SCORE",
                          help="with --multi-label: a label is present when its score (relative to the "
                               "image's best label, which scores 1) is at least this, in (0, 1] "
                               "(default 0.05, core/multilabel.py)")
    add_model_options(classify)
    _add_run_options(classify)
    add_output_options(classify)
    classify.set_defaults(handler=cmd_classify)

    search = commands.add_parser("search", help="rank images by a text query or an example image")
    search.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--query", help='text, e.g. "a yellow car at night"')
    query.add_argument("--image", type=Path, help="an example image")
    search.add_argument("--top-k", type=positive_int, default=10)
    add_model_options(search)
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
    register_scale(commands, classify, search)  # ray/pyarrow/ANN load only when those commands run
    return parser


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch-size", type=batch_size, default=32)
    parser.add_argument("--format", choices=["table", "json", "csv"], default="table")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the embedding cache")
    parser.add_argument("--exact", action="store_true",
                        help="decode JPEGs at full size (slower; the default draft decode keeps the same top-1)")
    parser.add_argument("--keep-raw-pairs-separate", action="store_true",
                        help="treat IMG_1.CR3 beside IMG_1.JPG as two photos (default: one, the JPEG)")


# -- classify -----------------------------------------------------------------------------------
def cmd_classify(args) -> int:
    if args.undo_xmp is not None:
        undo_keywords(args, note)
        return EXIT_OK
    if not args.paths:
        raise UsageError("Name image files or folders to classify (or use --undo-xmp).")
    if args.threshold is not None and not args.multi_label:
        raise UsageError("--threshold applies to --multi-label; without it each image gets its best label.")
    raw_labels = read_label_args(args)
    files, missing = collect_images(args.paths, not args.keep_raw_pairs_separate)
    engine = open_engine(args)
    raw_labels, args.templates = model_labels(engine.loaded, raw_labels, args.templates)
    label_set = engine.label_set(raw_labels, args.templates)
    for text in label_set.notes:
        note(text)
    embedded = drive(engine.embed_job(files, args.batch_size, args.exact))
    quarters = None
    if args.multi_label:  # each picture's four quarters too: see core/multilabel.py
        quarters = drive(engine.quarters_job(embedded.paths, embedded.features, args.batch_size, exact=args.exact))
    scores = engine.score(embedded.features, label_set, multi_label=args.multi_label,
                          templates=args.templates, quarters=quarters)
    rows = classify_rows(files, missing, embedded, scores, args.top_k, args.threshold)
    require_some_valid_score(embedded, scores)
    write_rows(rows, label_set.names, args.format)
    write_outputs(args, rows, label_set.names, embedded, note)
    report_failures(rows)
    return EXIT_OK


# -- search -------------------------------------------------------------------------------------
def cmd_search(args) -> int:
    files, missing = collect_images(args.paths, not args.keep_raw_pairs_separate)
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
        dump_json(hits + errors)
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(csv_row(["rank", "path", "score", "error"]))
        for hit in hits:
            writer.writerow(csv_row([hit["rank"], hit["path"], hit["score"], ""]))
        for error in errors:
            writer.writerow(csv_row(["", error["path"], "", error["error"]]))
    else:
        for hit in hits:
            print(f"{hit['rank']:>3}  {hit['score']:+.4f}  {safe_text(hit['path'])}")
        for error in errors:
            note(error["error"])
    return EXIT_OK


# -- models and cache ---------------------------------------------------------------------------
def cmd_models(args) -> int:
    from .core.catalog import list_models

    entries = list_models(include_untagged=args.all)
    if args.format == "json":
        dump_json([entry.__dict__ for entry in entries])
        return EXIT_OK
    print("✓ = weights on this machine\n")
    for entry in entries:
        mark = "✓" if entry.available else " "
        print(f"{mark} {entry.arch:<32} {entry.pretrained:<36} {entry.kind}")
    return EXIT_OK


def cmd_cache(args) -> int:
    """Works whatever state the cache is in: damaged, locked, read-only or not a folder at all."""
    from .core.cache import EmbeddingCache

    cache = EmbeddingCache()
    exports = _exports_dir()
    info = cache.info()
    if args.action == "clear":
        cache.clear()
        freed = _folder_size(exports)
        if exports is not None:
            shutil.rmtree(exports, ignore_errors=True)  # re-exported on next use
        print(f"Cleared {sum(info.images.values())} image and {sum(info.texts.values())} label "
              f"embeddings from {safe_text(info.path)}, and {freed / 1e6:.0f} MB of ONNX exports.")
        return EXIT_OK
    print(f"Cache: {safe_text(info.path)} ({info.size_bytes / 1e6:.1f} MB)")
    if info.note:
        print(f"  (not usable: {safe_text(info.note)})")
    for model in sorted(set(info.images) | set(info.texts)):
        print(f"  {safe_text(model)}: {info.images.get(model, 0)} images, "
              f"{info.texts.get(model, 0)} labels")
    if not info.images and not info.texts and not info.note:
        print("  (empty)")
    if exports is not None and exports.is_dir():
        print(f"ONNX exports: {safe_text(exports)} ({_folder_size(exports) / 1e6:.0f} MB)")
    return EXIT_OK


def _exports_dir() -> Path | None:
    from .core.paths import cache_dir

    try:
        return cache_dir() / "onnx"
    except OSError:  # the cache folder is unusable; EmbeddingCache has said so
        return None


def _folder_size(folder: Path | None) -> int:
    if folder is None or not folder.is_dir():
        return 0
    total = 0
    for path in folder.rglob("*"):
        try:
            info = path.lstat()
        except OSError:
            continue
        total += info.st_size if stat.S_ISREG(info.st_mode) else 0
    return total


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("CLIPDESK_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    _reopen_closed_streams()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed the usage message
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    for stream in (sys.stdout, sys.stderr):  # an ASCII-only terminal gets `\xe9`, not a crash
        with contextlib.suppress(AttributeError, ValueError, OSError):
            stream.reconfigure(errors="backslashreplace")
    logger = logging.getLogger("clipdesk")
    propagate = logger.propagate
    _route_notes_to_stderr()
    logger.propagate = False  # one line per note, even if a library configured the root logger
    try:
        return _run(args, debug)
    finally:
        logger.propagate = propagate


class _ClosedOutput(io.TextIOBase):
    """Stands for a closed stdout (`clipdesk ... >&-`): writing results fails like GNU tools do
    (one sentence, exit 1) instead of results vanishing behind exit 0."""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        import errno

        raise OSError(errno.EBADF, "standard output is closed; the results could not be written")


def _reopen_closed_streams() -> None:
    """A process started with stdout or stderr closed has them as None: every print would crash
    (or silently drop results). Notes go to the void; results fail with one sentence."""
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    if sys.stdout is None:
        sys.stdout = _ClosedOutput()


def _run(args, debug: bool) -> int:
    """The command, with every failure turned into one `clipdesk:` line and an exit code."""
    try:
        return args.handler(args)
    except ModelLoadError as error:
        _report(error, debug)
        return EXIT_MODEL
    except (UsageError, LabelError, ImageLoadError, ClipdeskError) as error:
        _report(error, debug)
        return exit_code_for(error)
    except BrokenPipeError:  # `clipdesk ... | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - keeps the interpreter's final flush quiet
        return EXIT_OK
    except KeyboardInterrupt:
        print("clipdesk: interrupted.", file=sys.stderr)
        return 130
    except OSError as error:  # disk full while writing results, a folder that vanished, ...
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        _report(error, debug, f"{error.strerror or _first_line(error)}{where}.")
        return EXIT_MODEL
    except RecursionError as error:
        _report(error, debug, "a structure nests too deeply (a cycle in model folders?)")
        return EXIT_MODEL
    except MemoryError as error:
        _report(error, debug, "out of memory")
        return EXIT_MODEL
    except Exception as error:  # noqa: BLE001 - never a traceback for a user; --debug shows it
        _report(error, debug, f"unexpected {type(error).__name__}: {_first_line(error)}")
        if not debug:
            print("clipdesk: this is a bug; please report it with the output of the same command "
                  "run with --debug.", file=sys.stderr)
        return EXIT_MODEL


def exit_code_for(error: BaseException) -> int:
    """Model and unsafe-file errors exit 1; the rest (labels, an example image, ...) are usage."""
    if isinstance(error, ModelLoadError):
        return EXIT_MODEL
    from .core.safeio import UnsafeFileError

    if isinstance(error, UnsafeFileError) or getattr(error, "exit_code", None) == EXIT_MODEL:
        return EXIT_MODEL
    return EXIT_USAGE


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return safe_text(text.splitlines()[0][:300]) if text else "(no message)"


def _report(error: BaseException, debug: bool, text: str | None = None) -> None:
    if debug:
        import traceback

        traceback.print_exception(type(error), error, error.__traceback__, file=sys.stderr)
    message = text if text is not None else " ".join(str(error).split()) or type(error).__name__
    print(f"clipdesk: {safe_text(message)}", file=sys.stderr)


def _route_notes_to_stderr() -> None:
    """Warnings logged by core (a cache moved aside, a file skipped) become one `clipdesk:` line."""
    import logging

    logger = logging.getLogger("clipdesk")
    if not any(isinstance(h, _NoteHandler) for h in logger.handlers):
        logger.addHandler(_NoteHandler(logging.WARNING))


class _NoteHandler(logging.Handler):
    """`clipdesk: <message>` on the current stderr, escaped; never a traceback (see --debug)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(f"clipdesk: {safe_text(record.getMessage())}", file=sys.stderr)
        except Exception:  # noqa: BLE001 - a note must never end a run
            self.handleError(record)


if __name__ == "__main__":
    sys.exit(main())
