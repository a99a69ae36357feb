"""`gc_paused`: no cyclic collection while a model loads (collector passes hold the GIL and froze
the window), the collector's state restored after, and a load that imported modules frozen."""

from __future__ import annotations

import gc
import sys
import types

from clipdesk.core import models
from clipdesk.core.models import gc_paused


def test_collector_is_off_inside_and_restored_after_nesting():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer load is still running
    assert gc.isenabled()


def test_a_disabled_collector_stays_disabled():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_load_that_imports_many_modules_freezes_what_it_created():
    frozen = gc.get_freeze_count()
    names = [f"_clipdesk_fake_module_{i}" for i in range(models.FREEZE_AFTER_MODULES)]
    try:
        with gc_paused():
            sys.modules.update({name: types.ModuleType(name) for name in names})
        assert gc.get_freeze_count() > frozen
    finally:
        for name in names:
            sys.modules.pop(name, None)
        gc.unfreeze()


def test_a_load_that_imports_nothing_freezes_nothing():
    frozen = gc.get_freeze_count()
    with gc_paused():
        _cycle = [[]]
        _cycle[0].append(_cycle)
    assert gc.get_freeze_count() == frozen
