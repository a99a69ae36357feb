"""The fine-tune dialog's report: the honest figure with its interval, a confusion matrix that fits."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from clipdesk.qt.widgets.finetune_dialog import FinetuneDialog
from training.report import evaluation_record

CLASSES = ["woven cotton with a long name", "denim twill", "knitted wool jersey", "silk satin",
           "linen plain weave", "corduroy wale", "fleece", "felt"]


def _result(tmp_path: Path):
    n = len(CLASSES)
    true = [i for i in range(n) for _ in range(6)]
    pred = [t if k % 3 else (t + 1) % n for k, t in enumerate(true)]
    record = evaluation_record(true, pred, "nested 5-fold cross-validation over all 48 images")
    confusion = [[sum(1 for t, p in zip(true, pred) if t == i and p == j) for j in range(n)] for i in range(n)]
    return SimpleNamespace(
        model_dir=tmp_path / "model", classes=CLASSES, accuracy_before=0.25, accuracy_after=record["accuracy"],
        confusion=confusion, val_paths=[tmp_path / f"{k}.png" for k in range(len(true))], val_true=true,
        val_pred=pred, evaluation=record)


def test_dialog_shows_the_interval_and_a_matrix_without_side_scroll(qtbot, tmp_path):
    dialog = FinetuneDialog(worker=None, arch="clipdesk-tiny", pretrained="none")
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    result = _result(tmp_path)
    dialog._finished(result)
    qtbot.wait(50)
    text = dialog.accuracy.text()
    low, high = result.evaluation["interval_95"]
    assert f"{result.accuracy_after:.1%}" in text and f"{low:.0%}–{high:.0%}" in text
    assert "48 images" in text and "nested" in text and "evaluate" in text
    table = dialog.confusion
    assert table.horizontalScrollBar().maximum() == 0  # every column inside the panel
    width = sum(table.columnWidth(j) for j in range(table.columnCount()))
    assert width <= table.viewport().width()
    assert table.item(0, 0).text() == str(result.confusion[0][0])
    shot = dialog.grab()
    assert not shot.isNull()
    shot.save(str(tmp_path / "finetune_dialog.png"))
