"""Fine-tuning from Python records the real architecture, never an alias (issue 9 §3)."""

from __future__ import annotations

import json

from ft_helpers import make_colour_folder

from clipdesk.core.jobs import run_job
from clipdesk.core.models import load_model


def test_python_finetune_of_the_demo_alias_records_its_real_architecture(tmp_path):
    from training.api import FinetuneConfig, finetune_job

    folder = make_colour_folder(tmp_path / "colours", per_class=4, size=24)
    out = tmp_path / "model"
    config = FinetuneConfig(folder, method="quick", arch="demo", pretrained="demo", out=out, device="cpu")
    run_job(finetune_job(config))
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["architecture"] == "clipdesk-demo"
    loaded = load_model(None, str(out), "cpu")  # the folder alone names what to load
    assert loaded.arch == "clipdesk-demo" and loaded.head is not None


def test_python_m_training_turns_an_unexpected_error_into_one_line(capsys, monkeypatch):
    from types import SimpleNamespace

    from training.cli import run

    monkeypatch.delenv("CLIPDESK_DEBUG", raising=False)

    def broken(args):
        raise RuntimeError("something odd\nsecond line")

    assert run(SimpleNamespace(handler=broken)) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "something odd" in err and "second line" not in err
