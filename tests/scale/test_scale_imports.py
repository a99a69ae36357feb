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


def test_reading_a_shard_imports_neither_pandas_nor_pyarrow_dataset(tmp_path):
    """`search --index` reads shards on every run: through pyarrow.dataset (pq.read_table) that
    pulled in pandas, 0.2-0.3 s of a 0.8 s search. The columns still come back whole."""
    code = f"""
import sys
import numpy as np
from clipdesk.scale import shards as sh
sh.write_shard(__import__("pathlib").Path({str(tmp_path)!r}), "s.parquet",
               {{"path": ["a", "b"], "error": [None, "bad"], "embedding": np.eye(2, 4, dtype=np.float32)}}, {{}})
for m in ("pandas", "pyarrow.dataset"):
    sys.modules.pop(m, None)
columns = sh.read_shard(__import__("pathlib").Path({str(tmp_path)!r}) / "s.parquet", ["path", "embedding", "nope"])
print(sorted(columns), columns["path"], columns["embedding"].tolist())
print(sorted(m for m in ("pandas", "pyarrow.dataset") if m in sys.modules))
"""
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "['embedding', 'path'] ['a', 'b'] [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]"
    assert lines[1] == "[]"
