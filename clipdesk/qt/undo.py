"""Undo the Qt way: one `QUndoStack`, one small `QUndoCommand` per user action.

Edit › Undo / Redo (the platform's keys: Ctrl+Z / Ctrl+Shift+Z, Ctrl+Y on Windows) cover adding and removing images, Clear all images,
every label edit (typed, edited, reordered, removed, imported, cleared) and sorting into folders.
A command's first `redo()` is the action that already happened, so pushing it changes nothing.
Sorting is undone through `clipdesk.core.sorting.undo`, which checks that the files are still the
ones it wrote; a sort cannot be redone (its command becomes obsolete once undone).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtGui import QKeySequence, QUndoCommand, QUndoStack
from PySide6.QtWidgets import QStyle

from clipdesk.core.session import ImageItem, Session


class _Command(QUndoCommand):
    """Skips its first redo: the action was done before the command was pushed."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._pushed = False

    def redo(self) -> None:
        if self._pushed:
            self.apply()
        self._pushed = True

    def apply(self) -> None:
        raise NotImplementedError


class AddImages(_Command):
    def __init__(self, session: Session, paths: list[Path], forget: Callable[[list[Path]], None],
                 shown: Callable[[list[Path]], None] | None = None) -> None:
        super().__init__(f"Add {len(paths)} image{'s' if len(paths) != 1 else ''}")
        self.session, self.paths, self.forget = session, list(paths), forget
        self.shown = shown or (lambda _paths: None)
        self.snapshot: list[tuple[int, ImageItem]] = []

    def undo(self) -> None:
        self.forget(self.paths)  # also stops slices of this add still waiting to be added
        rows = [row for row in map(self.session.row_of, self.paths) if row is not None]
        self.snapshot = self.session.snapshot(rows)
        self.session.remove_rows(rows)
        self.shown([])

    def apply(self) -> None:
        self.session.restore(self.snapshot)
        self.shown([item.path for _, item in self.snapshot])


class RemoveImages(_Command):
    """Remove rows (Delete, Clear all images); undo puts them back with their results.

    `shown(paths)` runs after each undo (with the restored paths) and redo (with none), so the
    window can select what came back and count what shows in its status line."""

    def __init__(self, session: Session, rows: list[int], text: str,
                 shown: Callable[[list[Path]], None] | None = None) -> None:
        super().__init__(text)
        self.session = session
        self.snapshot = session.snapshot(rows)
        self.shown = shown or (lambda _paths: None)

    def undo(self) -> None:
        self.session.restore(self.snapshot)
        self.shown([item.path for _, item in self.snapshot])

    def apply(self) -> None:
        self.session.remove_paths([item.path for _, item in self.snapshot])
        self.shown([])


class ChangeLabels(_Command):
    def __init__(self, session: Session, before: list[str], after: list[str]) -> None:
        super().__init__(_label_text(before, after))
        self.session, self.before, self.after = session, before, after

    def undo(self) -> None:
        self.session.set_labels(self.before)

    def apply(self) -> None:
        self.session.set_labels(self.after)


class SortIntoFolders(_Command):
    """Undo calls the window's verified undo of the sort; there is no redo."""

    def __init__(self, count: int, mode: str, undo_sort: Callable[[], None]) -> None:
        super().__init__(f"{'Move' if mode == 'move' else 'Copy'} {count} files into folders")
        self.undo_sort = undo_sort

    def undo(self) -> None:
        self.undo_sort()
        self.setObsolete(True)

    def apply(self) -> None:  # not reached: obsolete commands leave the stack when undone
        pass


def _label_text(before: list[str], after: list[str]) -> str:
    if not after:
        return "Clear labels"
    added = [label for label in after if label not in before]
    removed = [label for label in before if label not in after]
    if len(added) == 1 and not removed:
        return f"Add label “{added[0]}”"
    if len(removed) == 1 and not added:
        return f"Remove label “{removed[0]}”"
    if sorted(before) == sorted(after):
        return "Reorder labels"
    return "Change labels"


class UndoController:
    """The window's undo stack; it records label edits itself by following the session."""

    def __init__(self, session: Session, parent) -> None:
        self.session = session
        self.stack = QUndoStack(parent)
        self._labels = list(session.labels)
        self._applying = False
        session.on("labels", self._labels_changed)

    def actions(self, parent) -> list:
        # Every binding the platform lists (Ctrl+Z; Ctrl+Shift+Z on X11, Ctrl+Y too on Windows)
        # and nothing more: a key listed twice on one action is ambiguous and fires nothing, which
        # is what Ctrl+Shift+Z did on X11 when it was added by hand besides StandardKey.Redo.
        undo = self.stack.createUndoAction(parent, "&Undo")
        undo.setShortcuts(QKeySequence.StandardKey.Undo)
        undo.setObjectName("undoAction")
        undo.setProperty("shortcut_name", "Undo")  # its text names the command: the shortcut list wants this
        undo.setIcon(parent.style().standardIcon(QStyle.StandardPixmap.SP_ArrowBack))
        redo = self.stack.createRedoAction(parent, "&Redo")
        redo.setShortcuts(QKeySequence.StandardKey.Redo)
        redo.setObjectName("redoAction")
        redo.setProperty("shortcut_name", "Redo")
        redo.setIcon(parent.style().standardIcon(QStyle.StandardPixmap.SP_ArrowForward))
        return [undo, redo]

    def _labels_changed(self) -> None:
        after = list(self.session.labels)
        if after != self._labels and not self._applying:
            self.stack.push(_Guarded(self, ChangeLabels(self.session, self._labels, after)))
        self._labels = after

    def push(self, command: QUndoCommand) -> None:
        self.stack.push(_Guarded(self, command))


class _Guarded(QUndoCommand):
    """Runs a command with label recording off, so undoing a label edit is not itself recorded."""

    def __init__(self, controller: UndoController, inner: QUndoCommand) -> None:
        super().__init__(inner.text())
        self.controller, self.inner = controller, inner

    def _run(self, step: Callable[[], None]) -> None:
        self.controller._applying = True
        try:
            step()
        finally:
            self.controller._applying = False
            self.controller._labels = list(self.controller.session.labels)
        self.setObsolete(self.inner.isObsolete())

    def redo(self) -> None:
        self._run(self.inner.redo)

    def undo(self) -> None:
        self._run(self.inner.undo)
