"""Geometry checks for the window's layout: no visible widget overlaps a sibling, none is cut
off by its parent, none is squeezed below the smallest size its own contents need."""

from __future__ import annotations

from itertools import combinations

from PySide6.QtWidgets import QAbstractScrollArea, QSizePolicy, QWidget

IGNORED = QSizePolicy.Policy.Ignored


def _visible_children(widget: QWidget) -> list[QWidget]:
    return [c for c in widget.children() if isinstance(c, QWidget) and c.isVisible() and not c.isWindow()
            and not c.geometry().isEmpty()]  # a zero-size widget (a hidden header's corner) draws nothing


def _scrolled(widget: QWidget) -> bool:
    """A scroll area's viewport: what lies in it may extend past it (that is what scrolling is)."""
    parent = widget.parentWidget()
    return isinstance(parent, QAbstractScrollArea) and parent.viewport() is widget


def _name(widget: QWidget) -> str:
    text = getattr(widget, "text", None)
    label = text() if callable(text) else ""
    return f"{type(widget).__name__}#{widget.objectName() or '-'}{f' {label[:20]!r}' if label else ''}"


def _in_layout(widget: QWidget) -> bool:
    """Placed by a layout (not by its parent's own code, as a spin box places its line edit)."""
    parent = widget.parentWidget()
    stack = [parent.layout()] if parent is not None and parent.layout() is not None else []
    while stack:
        layout = stack.pop()
        for i in range(layout.count()):
            item = layout.itemAt(i)
            if item.widget() is widget:
                return True
            if item.layout() is not None:
                stack.append(item.layout())
    return False


def layout_problems(root: QWidget) -> list[str]:
    """One line per overlap, clipping or squeeze found among `root`'s visible widgets."""
    problems = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisible() or (widget.isWindow() and widget is not root):
            continue
        kids = _visible_children(widget)
        for a, b in combinations(kids, 2):
            if a.geometry().intersects(b.geometry()):
                problems.append(f"{_name(a)} {a.geometry().getRect()} overlaps {_name(b)} "
                                f"{b.geometry().getRect()} in {_name(widget)}")
        if not _scrolled(widget):
            for kid in kids:
                if not widget.rect().contains(kid.geometry()):
                    problems.append(f"{_name(kid)} {kid.geometry().getRect()} cut off by {_name(widget)} "
                                    f"{widget.rect().getRect()}")
        if widget is not root and _in_layout(widget):
            hint, policy = widget.minimumSizeHint(), widget.sizePolicy()
            set_ = widget.minimumSize()  # a minimum set on the widget replaces its hint
            hint.setWidth(set_.width() or hint.width())
            hint.setHeight(set_.height() or hint.height())
            if policy.horizontalPolicy() != IGNORED and widget.width() < hint.width():
                problems.append(f"{_name(widget)} is {widget.width()} wide, needs {hint.width()}")
            if policy.verticalPolicy() != IGNORED and not widget.hasHeightForWidth() \
                    and widget.height() < hint.height():
                problems.append(f"{_name(widget)} is {widget.height()} high, needs {hint.height()}")
    return problems
