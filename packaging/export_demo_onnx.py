"""Re-make the demo model's shipped ONNX export (resources/models/demo/onnx) with torch.

Run after `python -m training.build_demo` changes the demo weights:

    python packaging/export_demo_onnx.py

The export is clipdesk's own first-use export (verified against torch on sample inputs, then
recorded with the digests of its files), made in a temporary cache and copied beside the demo's
weights, where `onnx_store.shipped_export` finds it: a torch-free install (the bundle,
`pip install clipdesk[app]`) then runs the demo with ONNX Runtime alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    target = ROOT / "resources" / "models" / "demo" / "onnx"
    with tempfile.TemporaryDirectory() as cache:
        os.environ["CLIPDESK_CACHE_DIR"] = cache
        sys.path.insert(0, str(ROOT))
        from clipdesk.core.jobs import run_job
        from clipdesk.core.models import load_model
        from clipdesk.core.onnx_convert import export_job

        shutil.rmtree(target, ignore_errors=True)  # else export_job would hand back the old one
        loaded = load_model("demo", "demo", "cpu")
        folder, meta = run_job(export_job(loaded, "fp32"))
        if not meta.get("preprocess") or not meta.get("tokenizer"):
            print("the demo's transform or tokenizer has no torch-free stand-in; not shipped")
            return 1
        shutil.copytree(folder, target)
        meta = json.loads((target / "meta.json").read_text(encoding="utf-8"))
        meta["pretrained"] = "demo"  # not a path of this machine (meta.json is not digested)
        (target / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        for path in target.iterdir():
            path.chmod(0o644)
    size = sum(p.stat().st_size for p in target.iterdir())
    print(f"wrote {target} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
