"""Every script in examples/ runs offline (demo model) as users would run it, and says what it shows."""

from __future__ import annotations

import re
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
    if script.name == "quickstart.py":
        check_quickstart_output(out.stdout.splitlines())


def check_quickstart_output(lines: list[str]) -> None:
    """The demo model names each of the three sample pictures as its file name says, confidently,
    and finds the pink star: a broken or random-weights model prints other labels or scores."""
    assert len(lines) == 4, lines
    for line, name in zip(lines[:3], ["01-red-circle.png", "02-blue-star.png", "03-yellow-triangle.png"]):
        path, *label, score = line.split()
        assert Path(path).name == name
        assert " ".join(label) == " ".join(name[3:-4].split("-"))
        assert float(score) >= 0.9, line
    assert Path(lines[3]).name == "08-pink-star.png"


def test_readme_python_section_is_the_quickstart_example():
    """The README's "Python" block is examples/quickstart.py, which the test above runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Python\n.*?```python\n(.*?)```", readme, re.S | re.M)
    quickstart = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    assert len([line for line in quickstart.splitlines() if line.strip()]) == 6
    assert section is not None, "README.md has no '## Python' section with a python block"
    assert section.group(1).strip() == quickstart.strip()
