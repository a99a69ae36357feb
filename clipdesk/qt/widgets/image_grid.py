"""The image grid (`imageView`): cards with thumbnail, name, label and score; the drop target."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics, QKeySequence, QPainter, QPalette, QPen
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate

from clipdesk.core.session import Session

from ..thumbnails import Thumbnails, scaled
from .repaint_pacer import RepaintPacer
from .session_rows import SessionRowsMixin

PATH_ROLE = Qt.ItemDataRole.UserRole + 1
CARD = QSize(160, 214)  # the smallest card (3 columns in an 800 px window); cards widen to fill the width
GAP = 6  # between cards
THUMB = QSize(168, 136)
UNSURE_COLOUR = QColor("#c77c02")
ERROR_COLOUR = QColor("#c62828")
ACCENT = QColor("#2e7dd7")


class ImageListModel(SessionRowsMixin, QAbstractListModel):
    def __init__(self, session: Session, thumbnails: Thumbnails, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbnails = thumbnails
        self._follow_session()
        thumbnails.ready.connect(self._thumbnail_ready)

    def _span(self, first: int, last: int):
        return self.index(first), self.index(last)

    def _thumbnail_ready(self, path: Path) -> None:
        row = self.session.row_of(path)
        if row is not None:
            self._changed([row])

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self.session.items)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.session.items):
            return None
        item = self.session.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return item.path.name
        if role == PATH_ROLE:
            return item.path
        if role == Qt.ItemDataRole.ToolTipRole:
            decision = self.session.decision(index.row())
            lines = [str(item.path)]
            if item.error:
                lines.append(f"⚠ {item.error}")
            elif decision is not None:
                lines.append(f"{decision.label} — {decision.score:.1%}")
            return "\n".join(lines)
        return None

    def flags(self, index):
        base = super().flags(index)
        return base | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else base


class ImageCardDelegate(QStyledItemDelegate):
    """Paints a card: thumbnail, file name, then the label (or error/unsure) with a score bar."""

    def __init__(self, session: Session, thumbnails: Thumbnails, parent=None) -> None:
        super().__init__(parent)
        self.session = session
        self.thumbnails = thumbnails

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        return getattr(option.widget, "card", CARD)  # ImageView widens it to fill its width

    def paint(self, painter: QPainter, option, index) -> None:
        source = index.model().mapToSource(index) if hasattr(index.model(), "mapToSource") else index
        row = source.row()
        if row >= len(self.session.items):
            return
        item = self.session.items[row]
        palette = option.palette
        rect = option.rect.adjusted(4, 4, -4, -4)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(QPen(ACCENT if selected else palette.color(QPalette.ColorRole.Mid), 2 if selected else 1))
        painter.setBrush(palette.color(QPalette.ColorRole.Highlight).lighter(185) if selected
                         else palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(rect, 8, 8)

        thumb_rect = QRect(rect.left() + 4, rect.top() + 4, rect.width() - 8, THUMB.height())
        image = self.thumbnails.get(item.path)
        if image is not None:
            image = scaled(image, thumb_rect.width(), thumb_rect.height())
            x = thumb_rect.left() + (thumb_rect.width() - image.width()) // 2
            y = thumb_rect.top() + (thumb_rect.height() - image.height()) // 2
            painter.drawImage(x, y, image)
        else:
            painter.fillRect(thumb_rect, palette.color(QPalette.ColorRole.AlternateBase))
            painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
            text = "no preview" if item.path in self.thumbnails.failed else "loading…"
            painter.drawText(thumb_rect, Qt.AlignmentFlag.AlignCenter, text)

        text_left = rect.left() + 8
        width = rect.width() - 16
        metrics = QFontMetrics(option.font)
        y = thumb_rect.bottom() + 6
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        name = metrics.elidedText(item.path.name, Qt.TextElideMode.ElideMiddle, width)
        painter.drawText(QRect(text_left, y, width, metrics.height()), Qt.AlignmentFlag.AlignLeft, name)
        y += metrics.height() + 2
        self._paint_result(painter, option, row, item, QRect(text_left, y, width, metrics.height() + 8))
        if item.status == "error":
            self._badge(painter, rect)
        if item.similarity is not None:
            self._pill(painter, thumb_rect, f"match {item.similarity:.2f}")
        painter.restore()

    @staticmethod
    def _pill(painter: QPainter, area: QRect, text: str) -> None:
        """The search similarity, on the thumbnail's corner."""
        metrics = QFontMetrics(painter.font())
        pill = QRect(area.left() + 4, area.top() + 4, metrics.horizontalAdvance(text) + 12,
                     metrics.height() + 4)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(pill, 6, 6)
        painter.setPen(QColor("white"))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)

    def _paint_result(self, painter: QPainter, option, row: int, item, area: QRect) -> None:
        bold = QFont(option.font)
        bold.setBold(True)
        metrics = QFontMetrics(bold)
        decision = self.session.decision(row)
        if item.status == "error":
            painter.setPen(ERROR_COLOUR)
            painter.setFont(option.font)
            painter.drawText(area, Qt.AlignmentFlag.AlignLeft, "could not be read")
            return
        if decision is None:
            painter.setPen(option.palette.color(QPalette.ColorRole.PlaceholderText))
            text = "waiting…" if item.status == "pending" else "add labels to classify"
            painter.drawText(area, Qt.AlignmentFlag.AlignLeft, text)
            return
        colour = UNSURE_COLOUR if decision.unsure else option.palette.color(QPalette.ColorRole.Text)
        score = f"{decision.score:.0%}"
        painter.setFont(bold)
        painter.setPen(colour)
        label_width = area.width() - metrics.horizontalAdvance(score) - 6
        label = metrics.elidedText(decision.label, Qt.TextElideMode.ElideRight, label_width)
        painter.drawText(QRect(area.left(), area.top(), label_width, metrics.height()),
                         Qt.AlignmentFlag.AlignLeft, label)
        painter.drawText(QRect(area.left(), area.top(), area.width(), metrics.height()),
                         Qt.AlignmentFlag.AlignRight, score)
        bar = QRect(area.left(), area.top() + metrics.height() + 3, area.width(), 4)
        painter.fillRect(bar, option.palette.color(QPalette.ColorRole.AlternateBase))
        bar.setWidth(max(1, int(area.width() * decision.score)))
        painter.fillRect(bar, UNSURE_COLOUR if decision.unsure else ACCENT)

    @staticmethod
    def _badge(painter: QPainter, rect: QRect) -> None:
        badge = QRect(rect.right() - 26, rect.top() + 8, 20, 20)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(ERROR_COLOUR)
        painter.drawEllipse(badge)
        painter.setPen(QColor("white"))
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, "!")


class ImageView(QListView):
    """Icon grid that accepts dropped files and folders (text/uri-list) and Delete."""

    paths_dropped = Signal(list)
    delete_requested = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("imageView")
        # A wrapping list (not IconMode): its static layout of uniform cards is arithmetic, where
        # IconMode builds an item per row and asks the model for every index (seconds at 20,000).
        self.setViewMode(QListView.ViewMode.ListMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setMovement(QListView.Movement.Static)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(1000)  # rows laid out per event-loop turn: ≈ 5 ms at most (20,000 rows: 20 turns)
        self.setSpacing(4)
        self.card = QSize(CARD)
        self.setGridSize(QSize(CARD.width() + GAP, CARD.height() + GAP))
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAcceptDrops(True)
        self.setDropIndicatorShown(False)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
        self.viewport().setAcceptDrops(True)  # drops land on the viewport of a scroll area
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self._pacer = RepaintPacer(self)  # while results stream in: a few repaints a second

    @staticmethod
    def columns_for(width: int) -> tuple[int, int]:
        """(columns, cell width) for a viewport `width`: as many cards of at least CARD's width as
        fit, widened so that they fill it. QListView puts cell k at x = k·cell and wraps unless
        x + cell <= width - 1 (its bounds' right edge)."""
        usable = width - 1
        columns = max(1, usable // (CARD.width() + GAP))
        return columns, max(CARD.width() + GAP, usable // columns)

    def fit_columns(self) -> None:
        """Widen the cells to the viewport's width (which already excludes a shown scrollbar)."""
        _columns, cell = self.columns_for(self.viewport().width())
        if cell != self.gridSize().width():
            self.card = QSize(cell - GAP, CARD.height())
            self.setGridSize(QSize(cell, CARD.height() + GAP))  # lays the rows out again

    def resizeEvent(self, event) -> None:  # noqa: N802
        self.fit_columns()  # the viewport's resize, e.g. a window resize or the scrollbar showing
        super().resizeEvent(event)

    @staticmethod
    def dropped_paths(mime) -> list[Path]:
        return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = self.dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.paths_dropped.emit(paths)
        else:
            event.ignore()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.matches(QKeySequence.StandardKey.Delete) or event.key() == Qt.Key.Key_Backspace:
            self.delete_requested.emit()
            return
        super().keyPressEvent(event)

    def dataChanged(self, top_left, bottom_right, roles=()) -> None:  # noqa: N802
        """Repaint only: QListView lays every row out again on any dataChanged (in ListMode a
        change may resize an item), 20,000 rows per landed thumbnail; cards have one size."""
        self._pacer.changed(top_left, bottom_right)

    def paintEvent(self, event) -> None:  # noqa: N802
        super().paintEvent(event)
        if self.model() is not None and self.model().rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            font = painter.font()
            font.setPointSizeF(font.pointSizeF() * 1.3)
            painter.setFont(font)
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter,
                             "Drop images or folders here\nor paste (Ctrl+V) · File › Add images…")
