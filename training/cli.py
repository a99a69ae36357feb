"""`clipdesk finetune` / `clipdesk evaluate` (and `python -m training …`, torchrun included).

Exit codes: 0 ok, 1 the model cannot be loaded, 2 usage or data errors (one sentence on stderr),
130 interrupted or cancelled. Reports go to stdout, tqdm progress to stderr.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from clipdesk.core.errors import Cancelled, ClipdeskError, ModelLoadError
from clipdesk.options import add_model_options, fraction_below_1, positive_int

EXIT_OK, EXIT_MODEL, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _positive_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:  # nan and inf pass a plain `<= 0` test
        raise argparse.ArgumentTypeError("must be a positive finite number")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError("must be between 0 and 4294967295")
    return value


CONTRASTIVE_MIN_BATCH = 2  # a contrastive batch needs a negative: one image is 0 optimisation steps


def register(subparsers) -> None:
    """Add `finetune` and `evaluate` to an argparse sub-parser set (clipdesk's or ours)."""
    finetune = subparsers.add_parser(
        "finetune", help="adapt a model to labelled folders (one sub-folder per class)",
        description="Fine-tune on FOLDER/<class>/*.jpg (or captioned pairs with --method captions).")
    finetune.add_argument("folder", type=Path, metavar="FOLDER",
                          help="class sub-folders; for captions a CSV (filepath,caption) or images with .txt files")
    finetune.add_argument("--method", choices=["quick", "full", "captions"], default="quick",
                          help="quick: few-shot head in seconds; full: fine-tune both towers (FLYP + WiSE-FT); "
                               "captions: contrastive training on captioned pairs")
    add_model_options(finetune, backend=False, precision=False)  # quick: the ONNX export where served torch-free
    finetune.add_argument("--epochs", type=positive_int, default=None,
                          help="training epochs for full and captions (quick ignores it: its head is a cross-validated fit)")
    finetune.add_argument("--lr", type=_positive_float, default=None, help="learning rate; default per method")
    finetune.add_argument("--batch-size", type=positive_int, default=32)
    val = finetune.add_mutually_exclusive_group()
    val.add_argument("--val-split", type=fraction_below_1, default=0.2,
                     help="held-out share per class, in (0, 1) (default 0.2)")
    val.add_argument("--val-folder", type=Path, default=None, help="a separate labelled validation folder")
    finetune.add_argument("--out", type=Path, default=None,
                          help="output folder (default: the user data dir's models/<name>/)")
    finetune.add_argument("--name", default=None, help="model name under the user data dir")
    finetune.add_argument("--seed", type=_seed, default=0)
    finetune.add_argument("--overwrite", action="store_true",
                          help="replace the model already in --out (or models/<name>); nothing else is ever replaced")
    finetune.add_argument("--format", choices=["table", "json"], default="table")
    finetune.set_defaults(handler=_os_errors_as_sentences(cmd_finetune))

    evaluate = subparsers.add_parser("evaluate", help="accuracy of a model on a labelled folder")
    evaluate.add_argument("folder", type=Path, metavar="FOLDER", help="one sub-folder per class")
    add_model_options(evaluate, backend=False, precision=False)
    evaluate.add_argument("--format", choices=["table", "json"], default="table")
    evaluate.add_argument("--png", type=Path, default=None, help="also draw the confusion matrix to this PNG")
    evaluate.set_defaults(handler=_os_errors_as_sentences(cmd_evaluate))


# -- running -------------------------------------------------------------------------------------
def drive(job, quiet: bool = False):
    """Run a job with one tqdm bar per phase on stderr; training steps show the loss."""
    from clipdesk.console import drive as drive_console

    return drive_console(job, quiet, _show_training_payload)


def _show_training_payload(progress, bar) -> None:
    payload = progress.payload if isinstance(progress.payload, dict) else {}
    if payload.get("kind") == "train":
        bar.set_postfix(epoch=payload["epoch"], loss=f"{payload['loss']:.4f}", refresh=False)
    elif payload.get("kind") == "val":
        what = payload.get("candidate") or f"epoch {payload['epoch']}"
        bar.write(f"{what}: validation accuracy {payload['accuracy']:.1%}", file=sys.stderr)
    elif payload.get("kind") == "resume":
        bar.write(progress.message, file=sys.stderr)


def note(text: str) -> None:
    print(f"clipdesk: {printable(text)}", file=sys.stderr)


_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """File and class names may hold terminal escape codes or undecodable bytes: show them escaped."""
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class _PrintableStream:
    """stdout for the report: every write goes through `printable` (JSON is already escaped)."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write(printable(text))

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def finite_json(value):
    """NaN/inf become null, so `--format json` is always valid JSON (imported lazily: start-up)."""
    from .checkpoint import finite_json as finite

    return finite(value)


def _os_errors_as_sentences(handler):
    """A file the command could not read or write is one sentence (exit 2), never a traceback;
    names with escape codes or undecodable bytes are printed escaped."""
    @functools.wraps(handler)
    def guarded(args) -> int:
        from .data import DataError

        stdout, sys.stdout = sys.stdout, _PrintableStream(sys.stdout)
        try:
            return handler(args)
        except BrokenPipeError:
            raise
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            raise DataError(f"{where}{error.strerror or error}.") from error
        finally:
            sys.stdout = stdout
    return guarded


def check_finetune_args(args) -> None:
    """What argparse cannot see: combinations of options and what is on disk, before any work."""
    from .data import DataError

    if args.method in ("full", "captions") and args.batch_size < CONTRASTIVE_MIN_BATCH:
        raise DataError(f"--batch-size must be at least {CONTRASTIVE_MIN_BATCH} for --method {args.method}: "
                        "contrastive training compares the images within a batch.")
    from .checkpoint import output_dir

    for option, path in (("FOLDER", args.folder), ("--val-folder", args.val_folder)):
        if path is not None and not path.expanduser().exists():
            raise DataError(f"{option} {path} does not exist.")
    if args.val_folder is not None:  # validating on the training images reports learnt-by-heart as accuracy
        train, val = args.folder.expanduser().resolve(), args.val_folder.expanduser().resolve()
        if val == train or train in val.parents or val in train.parents:
            raise DataError(f"--val-folder {args.val_folder} overlaps FOLDER {args.folder}; give a separate "
                            "folder of other images (or use --val-split).")
    out = output_dir(args.folder, args.method, args.out, args.name, args.overwrite)  # --out, --name, --overwrite
    base = Path(str(args.pretrained or "")).expanduser()
    if base.is_dir() and out.resolve() == base.resolve():  # the new model would refer to itself
        raise DataError(f"--out {out} is the --pretrained model itself; save the new model to another folder.")


def check_png_target(path: Path) -> Path:
    """`--png` must be writable: checked before the evaluation runs, not after."""
    from .data import DataError

    path = Path(path).expanduser().absolute()
    if path.is_dir():
        raise DataError(f"--png {path} is a folder; give a file name such as confusion.png.")
    if os.path.lexists(path) and not path.is_file():  # a FIFO would block the write forever
        raise DataError(f"--png {path} exists and is not a regular file; give another name.")
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DataError(f"--png {path} cannot be written: {existing} is a file, not a folder.")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DataError(f"--png {path} cannot be written: the folder {existing} is not writable.")
    return path


def cmd_finetune(args) -> int:
    from .config import torch_needed

    missing = torch_needed(args.method)
    if missing:  # full and captions without torch: one sentence, exit 1, before anything else
        raise ModelLoadError(missing)
    check_finetune_args(args)  # before torch loads: a usage error answers at once
    from clipdesk.core.models import resolve_source

    from .api import FinetuneConfig, finetune_job

    arch, pretrained = resolve_source(args.model, args.pretrained)  # `demo` → its real architecture
    config = FinetuneConfig(
        folder=args.folder, method=args.method, arch=arch, pretrained=pretrained,
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, val_split=args.val_split,
        val_folder=args.val_folder, out=args.out, device=args.device, seed=args.seed, name=args.name,
        overwrite=args.overwrite,
    )
    rank = int(os.environ.get("RANK", "0") or 0)  # torchrun's; full and captions join its group in the job
    if args.method == "quick" and rank != 0:
        return EXIT_OK  # the quick head takes seconds on one process; other ranks have nothing to do
    result = drive(finetune_job(config), quiet=rank != 0)
    if rank != 0:
        return EXIT_OK
    for line in result.skipped[:20]:
        note(line)
    if len(result.skipped) > 20:
        note(f"… and {len(result.skipped) - 20} more skipped entries.")
    if args.format == "json":
        json.dump(finite_json(result.as_dict()), sys.stdout, indent=1, allow_nan=False)  # always valid JSON
        sys.stdout.write("\n")
    else:
        print_finetune_report(result)
    return EXIT_OK


def print_finetune_report(result) -> None:
    from .report import confusion_text

    if result.method == "captions":
        print(f"Image→text recall@1 on held-out pairs: {result.accuracy_before:.1%} → {result.accuracy_after:.1%}")
        print(f"Model saved to {result.model_dir}")
        return
    from .report import honest_lines

    print("\n".join(honest_lines(result)))  # the honest figure, its interval, and where it comes from
    if result.alpha is not None:
        print(f"WiSE-FT mix α = {result.alpha:.1f} (0 = base model, 1 = fine-tuned)")
    if result.head_kind:
        print(f"Few-shot head: {result.head_kind}")
    if "generic_agreement" in result.forgetting:
        print(f"Forgetting guard: {result.forgetting['generic_agreement']:.1%} of zero-shot answers on "
              "generic labels unchanged")
    print("\nPer class (before → after):")
    for name, acc in result.per_class.items():
        print(f"  {name:<24} {result.per_class_before.get(name, 0.0):6.1%} → {acc:6.1%}")
    print("\nConfusion matrix (validation):")
    print(confusion_text(result.classes, result.confusion))
    print(f"\nModel saved to {result.model_dir}")
    if result.confusion_png:
        print(f"Confusion matrix image: {result.confusion_png}")
    # The folder names its architecture and classes: no --model, no --labels needed.
    print(f"Use it with: clipdesk classify PATH --pretrained {shlex.quote(str(result.model_dir))}")


def cmd_evaluate(args) -> int:
    from .api import evaluate_job
    from .report import confusion_text, write_confusion_png

    png = check_png_target(args.png) if args.png else None
    report = drive(evaluate_job(args.folder, args.model, args.pretrained, args.device))
    notes = [*report.skipped, *report.errors.values()]
    for message in notes[:20]:
        note(message)
    if len(notes) > 20:
        note(f"… and {len(notes) - 20} more skipped entries.")
    if png:
        png.parent.mkdir(parents=True, exist_ok=True)
        write_confusion_png(png, report.classes, report.confusion)
    if args.format == "json":
        json.dump(finite_json(report.as_dict()), sys.stdout, indent=1, allow_nan=False)  # always valid JSON
        sys.stdout.write("\n")
        return EXIT_OK
    print(f"Accuracy: {report.accuracy:.1%} on {len(report.true)} images")
    for name, acc in report.per_class.items():
        print(f"  {name:<24} {acc:6.1%}")
    print("\nConfusion matrix:")
    print(confusion_text(report.classes, report.confusion))
    return EXIT_OK


def run(args) -> int:
    """Dispatch with the project's exit codes; errors are one sentence, never a traceback."""
    try:
        return args.handler(args)
    except ModelLoadError as error:
        note(str(error))
        return EXIT_MODEL
    except Cancelled:
        note("cancelled; run the same command again to resume.")
        return EXIT_INTERRUPTED
    except ClipdeskError as error:
        note(str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        note("interrupted; run the same command again to resume.")
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - one line for a user; CLIPDESK_DEBUG=1 shows the traceback
        if os.environ.get("CLIPDESK_DEBUG", "") not in ("", "0"):
            raise
        kind = "could not write or read a file" if isinstance(error, OSError) else f"unexpected {type(error).__name__}"
        first = (str(error).strip().splitlines() or ["(no message)"])[0][:300]
        note(f"{kind}: {first}. Run again with CLIPDESK_DEBUG=1 to see where.")
        return EXIT_MODEL


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m training finetune|evaluate …` (also under torchrun)."""
    parser = argparse.ArgumentParser(prog="python -m training",
                                     description="Fine-tune and evaluate CLIP models on labelled folders.")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return run(args)
