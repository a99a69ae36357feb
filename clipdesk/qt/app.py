"""Start the desktop app: `clipdesk-gui` / `python main.py [PATHS] [--model ARCH --pretrained X]`.

Only Qt and light core modules load here; torch and open_clip load in the model worker, so the
window is on screen before the model is.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clipdesk-gui", description="The clipdesk desktop app.")
    parser.add_argument("paths", nargs="*", help="images or folders to open")
    parser.add_argument("--model", metavar="ARCH", help="open_clip architecture (e.g. ViT-B-32)")
    parser.add_argument("--pretrained", metavar="TAG|FILE|DIR|none",
                        help="pretrained tag, checkpoint file, fine-tuned folder, or none")
    parser.add_argument("--demo", action="store_true", help="use the built-in demo model")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "gpu", "mps"], help="inference device")
    parser.add_argument("--backend", choices=["auto", "torch", "onnx"], help="inference backend")
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
    if args.labels:
        window.replace_labels([part for part in args.labels.split(",") if part.strip()])
    window.show()
    if args.paths:
        window.add_paths(args.paths)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
