"""The label list of a session: typed lines kept unique by name, every change announced.

A mixin of `Session` (core/session.py): it needs `self.labels` (the raw lines) and `self._emit`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import LabelError
from .prompts import parse_label

UNSURE = "unsure"


def label_name(text: str) -> str:
    """The display name of a label line ("car | automobile" → "car")."""
    return parse_label(text).name


class LabelEditing:
    """Add, edit, remove and reorder labels; a duplicate or reserved name is one LabelError."""

    labels: list[str]

    def _emit(self, event: str, *args) -> None:  # provided by Session
        raise NotImplementedError

    def label_names(self) -> list[str]:
        return [label_name(text) for text in self.labels]

    def _validated(self, text: str, skip: int | None = None) -> str:
        text = " ".join(text.split())
        name = label_name(text)  # raises LabelError for an empty label
        if name.casefold() == UNSURE:
            raise LabelError(f"'{UNSURE}' is reserved for low-confidence images; choose another label.")
        for i, other in enumerate(self.labels):
            if i != skip and label_name(other).casefold() == name.casefold():
                raise LabelError(f"The label '{name}' is already in the list.")
        return text

    def add_label(self, text: str) -> None:
        self.labels.append(self._validated(text))
        self._emit("labels")

    def add_labels(self, texts: Iterable[str]) -> list[str]:
        """Add several (a pasted list); returns one note per line that was skipped."""
        notes = []
        for text in texts:
            try:
                self.labels.append(self._validated(text))
            except LabelError as error:
                notes.append(str(error))
        self._emit("labels")
        return notes

    def set_labels(self, texts: Iterable[str]) -> list[str]:
        self.labels = []
        return self.add_labels(texts)

    def edit_label(self, index: int, text: str) -> None:
        self.labels[index] = self._validated(text, skip=index)
        self._emit("labels")

    def remove_label(self, index: int) -> None:
        del self.labels[index]
        self._emit("labels")

    def move_label(self, index: int, to: int) -> None:
        to = max(0, min(to, len(self.labels) - 1))
        if to != index:
            self.labels.insert(to, self.labels.pop(index))
            self._emit("labels")
