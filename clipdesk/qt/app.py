"""Start the desktop app: `clipdesk-gui` / `python main.py [PATHS] [--model ARCH --pretrained X]`.

Only Qt and light core modules load here; torch and open_clip load in the model worker, so the
window is on screen before the model is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from clipdesk.options import add_model_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipdesk-gui", description="The clipdesk desktop app.")
    parser.add_argument("paths", nargs="*", help="images or folders to open")
    add_model_options(parser, precision=False, defaults=False)  # unset: the saved settings decide
    parser.add_argument("--demo", action="store_true", help="use the built-in demo model")
    parser.add_argument("--labels", help='comma-separated labels to start with, e.g. "cat,dog"')
    parser.add_argument("--batch-size", type=int, default=32)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from PySide6.QtWidgets import QApplication

    from clipdesk.core.settings import Settings

    from .main_window import MainWindow, ModelChoice

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("clipdesk")
    app.setOrganizationName("clipdesk")
    settings = Settings.load()
    choice = ModelChoice(settings["arch"], settings["pretrained"], settings["device"], settings["backend"])
    if args.demo:
        choice.arch, choice.pretrained = choice.arch or "demo", "demo"
    if args.model or args.pretrained:
        choice.arch = args.model or choice.arch or "ViT-B-32"
        choice.pretrained = args.pretrained or "none"
    if args.device:
        choice.device = args.device
    if args.backend:
        choice.backend = args.backend
    window = MainWindow(choice, settings, batch_size=max(1, args.batch_size))
    labels, paths = _start_content(args)
    if labels:
        window.replace_labels(labels)
    window.show()
    if paths:
        window.add_paths(paths)
    return app.exec()


def _start_content(args) -> tuple[list[str], list[str]]:
    """Labels and images to open with; `--demo` brings its sample pictures and labels, so a
    newcomer sees scores at once."""
    labels = [part.strip() for part in (args.labels or "").split(",") if part.strip()]
    paths = list(args.paths)
    if args.demo:
        from clipdesk.core.demo import SAMPLE_SCENES, demo_labels, demo_sample_images
        from clipdesk.core.errors import ModelLoadError

        try:
            paths = paths or [str(p) for p in demo_sample_images()]
            labels = labels or demo_labels(limit=len(SAMPLE_SCENES))  # every sample's own label
        except ModelLoadError as error:
            print(f"clipdesk: {error}", file=sys.stderr)
    return labels, paths


if __name__ == "__main__":
    sys.exit(main())
