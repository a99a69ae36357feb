"""Every script in examples/ runs offline (demo model) as users would run it, and says what it shows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_examples():
    assert [p.name for p in EXAMPLES] and "classify_demo.py" in [p.name for p in EXAMPLES]


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_offline(script, tmp_path):
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    if script.name == "classify_demo.py":
        lines = out.stdout.splitlines()
        assert any(line.split()[:2] == ["01-red-circle.png", "red"] for line in lines)
        assert any("image 1: blue star" in line for line in lines)  # the numpy copy of 02-blue-star
        assert any("no-such-file.png" in line for line in lines)  # an error result, not an exception
        assert lines[lines.index("Search 'pink star':") + 1].split()[1] == "08-pink-star.png"
