"""The bundle tests build a PyInstaller bundle (minutes): they run only when asked for with
`-m slow`, e.g. `python -m pytest -m slow tests/bundle -s`, never in a plain `pytest` run."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items):
    expression = " ".join((config.getoption("-m") or "").split())
    if "slow" in expression and "not slow" not in expression:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if item not in slow]


@pytest.fixture(autouse=True)
def isolated_user_dirs():
    """The bundle runs with `env -i` and its own HOME: no CLIPDESK_*_DIR to set here."""
    return None
