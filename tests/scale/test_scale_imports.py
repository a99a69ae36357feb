"""Ray stays optional: the single-process CLI never imports it, and `--ray` without it says how to install."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("ray", "pyarrow", "faiss", "usearch")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_classify_without_ray_imports_none_of_it(small_folder):
    code = f"""
import sys
from clipdesk.cli import build_parser, main
build_parser()
assert not [m for m in {HEAVY!r} if m in sys.modules], sys.modules.keys()
code = main(["classify", {str(small_folder)!r}, "--labels", "red,blue", "--model", "demo",
             "--backend", "torch", "--format", "json", "--no-cache"])
print(code, sorted(m for m in {HEAVY!r} if m in sys.modules))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "0 []"


def test_ray_missing_is_one_sentence(small_folder, tmp_path):
    code = f"""
import sys
sys.modules["ray"] = None  # as if it were not installed
from clipdesk.cli import main
sys.exit(main(["index", {str(small_folder)!r}, "--out", {str(tmp_path / "idx")!r}, "--ray", "--model", "demo"]))
"""
    done = run_python(code)
    assert done.returncode == 2
    assert done.stderr.strip() == ("clipdesk: Ray is not installed; install the scale extra with "
                                   "`pip install 'clipdesk[scale]'`.")
