"""Accuracy, per-class accuracy and the confusion matrix, as numbers, text and a PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from clipdesk.core.atomic import atomic_path

SMALL_EVALUATION = 100  # below this many images, an accuracy comes with its 95 % interval
GOLD_STANDARD = ("For the real test, run `clipdesk evaluate` on a separate labelled folder the "
                 "training never saw.")


def wilson_interval(correct: float, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion: sound at small n and at 0 % or 100 %."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def evaluation_record(true: Sequence[int], pred, how: str) -> dict:
    """The honest "after" figure: accuracy, how many images it rests on, how they were held out,
    and its 95 % interval. `pred` may hold one row per repeat of a repeated cross-validation: the
    accuracy is their mean, and the interval rests on the number of distinct images, not on
    repeats × images (repeating does not add information about unseen images)."""
    true, pred = np.asarray(true), np.atleast_2d(np.asarray(pred))
    n = len(true)
    mean_correct = float((pred == true[None, :]).sum(1).mean()) if n else 0.0
    low, high = wilson_interval(mean_correct, n)
    correct = int(round(mean_correct)) if pred.shape[0] > 1 else int(mean_correct)
    record = {"accuracy": mean_correct / n if n else 0.0, "correct": correct,
              "images": int(n), "method": how, "interval_95": [low, high],
              "small": bool(n < SMALL_EVALUATION), "gold_standard": GOLD_STANDARD}
    if pred.shape[0] > 1:
        record["repeats"] = int(pred.shape[0])
    return record


def accuracy_text(record: dict, plain: bool = True) -> str:
    """"71.0 % (95 % interval 58–81 %, 62 images)" — the interval only when the set is small."""
    accuracy = f"{record['accuracy']:.1%}"
    if not plain:
        accuracy = f"<b>{accuracy}</b>"
    low, high = record["interval_95"]
    if record.get("small", record["images"] < SMALL_EVALUATION):
        return f"{accuracy} (95 % interval {low:.0%}–{high:.0%}, {record['images']} images)"
    return f"{accuracy} on {record['images']} images"


def honest_lines(result) -> list[str]:
    """The report's first lines: before → after on images that made no choice, and where from."""
    record = result.evaluation
    if not record:
        return [f"Validation accuracy: {result.accuracy_before:.1%} zero-shot → {result.accuracy_after:.1%}"]
    lines = [f"Accuracy on images that chose nothing ({record['method']}):",
             f"  zero-shot {result.accuracy_before:.1%} → after {result.method} fine-tuning "
             f"{accuracy_text(record)}"]
    if record.get("candidate"):
        lines.append(f"  head chosen by cross-validation: {record['candidate']}")
    if record.get("selected_on"):
        lines.append(f"  (the settings were chosen on {record['selected_on']})")
    lines.append(record["gold_standard"])
    lines.extend(f"Warning: {text}" for text in getattr(result, "warnings", []) or [])
    return lines


def confusion_matrix(true: Sequence[int], pred: Sequence[int], n_classes: int) -> list[list[int]]:
    """Rows are the true class, columns the predicted one."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(true, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return matrix.tolist()


def accuracy(true: Sequence[int], pred: Sequence[int]) -> float:
    if len(true) == 0:
        return 0.0
    return float(np.mean(np.asarray(true) == np.asarray(pred)))


def per_class_accuracy(classes: Sequence[str], confusion: list[list[int]]) -> dict[str, float]:
    """Recall per class: the share of its images predicted as it (classes without images are left out)."""
    out = {}
    for index, name in enumerate(classes):
        row = confusion[index]
        if sum(row):
            out[name] = row[index] / sum(row)
    return out


def confusion_text(classes: Sequence[str], confusion: list[list[int]]) -> str:
    """A fixed-width table: true classes down, predictions across."""
    names = [f"{i}:{c[:18]}" for i, c in enumerate(classes)]
    width = max(len("true \\ predicted"), *(len(n) for n in names)) + 1
    cell = max(5, *(len(str(v)) + 1 for row in confusion for v in row))
    lines = ["true \\ predicted".ljust(width) + "".join(f"{i:>{cell}}" for i in range(len(names)))]
    for name, row in zip(names, confusion):
        lines.append(name.ljust(width) + "".join(f"{v:>{cell}}" for v in row))
    return "\n".join(lines)


def write_confusion_png(path: Path, classes: Sequence[str], confusion: list[list[int]]) -> Path:
    """Draw the matrix with Pillow: shaded cells (row-normalised), counts, class names."""
    from PIL import Image, ImageDraw

    n = len(classes)
    cell = 48 if n <= 12 else 28
    label_w = min(220, 12 + 7 * max((len(c) for c in classes), default=4))
    top = 28
    image = Image.new("RGB", (label_w + n * cell + 10, top + label_w + n * cell), "white")
    draw = ImageDraw.Draw(image)
    draw.text((4, 4), "rows: true class · columns: predicted", fill="black")
    for i, row in enumerate(confusion):
        total = max(1, sum(row))
        for j, value in enumerate(row):
            share = value / total
            colour = (int(255 - 200 * share), int(255 - 120 * share), 255) if i == j else \
                (255, int(255 - 170 * share), int(255 - 170 * share))
            x, y = label_w + j * cell, top + label_w + i * cell
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=colour, outline=(200, 200, 200))
            draw.text((x + 4, y + cell // 2 - 6), str(value), fill="black")
        draw.text((4, top + label_w + i * cell + cell // 2 - 6), classes[i][:30], fill="black")
    for j, name in enumerate(classes):  # column names, rotated to fit above the columns
        text = Image.new("RGB", (label_w, 14), "white")
        ImageDraw.Draw(text).text((2, 1), name[:30], fill="black")
        rotated = text.rotate(90, expand=True)
        image.paste(rotated, (label_w + j * cell + cell // 2 - 7, top))
    path = Path(path)
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
    return path
