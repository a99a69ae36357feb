"""Run the clipdesk CLI and record which backend its engine actually used.

    python benchmarks/_backend_probe.py REPORT.json classify FOLDER --backend onnx ...

clipdesk falls back to torch, with a one-line note, when ONNX Runtime cannot run a model (and
serves torch while a first-use export is pending); a benchmark row called "ONNX" must not time
such a run. At exit this writes {"start": [...], "end": [...], "torch_imported": bool} to
REPORT.json: every engine's encoder name when it was made and when the process ended ("onnx",
"onnx-int8", "torch", or torch while an export is pending), and whether torch was imported at
all (a run on a cached export never imports it). Recording only: the CLI runs unchanged.
"""

from __future__ import annotations

import atexit
import json
import sys
from pathlib import Path

_engines: list[tuple[str, object]] = []


def _recording(init):
    def recording_init(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        _engines.append((str(self.encoder.name), self))
    return recording_init


def _report(path: Path) -> None:
    report = {"start": [name for name, _ in _engines], "end": [str(e.encoder.name) for _, e in _engines],
              "torch_imported": "torch" in sys.modules}
    path.write_text(json.dumps(report), encoding="utf-8")


def backend_used(report: dict) -> str:
    """One label for what ran: the encoder names seen, in order, e.g. "onnx" or "torch, onnx"."""
    names = dict.fromkeys(report["start"] + report["end"])
    return ", ".join(names) or "no engine"


if __name__ == "__main__":
    # Imported here, not at the top: bench_rclip imports `backend_used` into its measuring
    # process, which must stay small (a child's peak RSS starts from its parent's).
    from clipdesk import cli
    from clipdesk.core.engine import Engine

    Engine.__init__ = _recording(Engine.__init__)
    atexit.register(_report, Path(sys.argv[1]))
    sys.argv = ["clipdesk", *sys.argv[2:]]
    sys.exit(cli.main())
