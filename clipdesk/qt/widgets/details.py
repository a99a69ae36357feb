"""The selected image: a preview, its decision, a sorted bar per label, its error if any."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QLabel, QPushButton, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from clipdesk.core.session import Session

from ..thumbnails import Thumbnails
from .score_bars import ScoreBars


class DetailsPanel(QWidget):
    find_similar = Signal(object)  # the selected path
    similar_possible = Signal(bool)  # the toolbar's Find similar follows this panel's button

    def __init__(self, session: Session, previews: Thumbnails, parent=None) -> None:
        super().__init__(parent)
        self.setObjectName("detailsPanel")
        self.session = session
        self.previews = previews  # larger than grid thumbnails, same off-thread loader
        self.path: Path | None = None

        self.preview = QLabel("Select an image to see every label's score")
        self.preview.setObjectName("previewLabel")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumHeight(90)
        self.preview.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # the pixmap never sizes it
        self.preview.setWordWrap(True)
        self.title = QLabel()
        self.title.setObjectName("detailsTitle")
        self.title.setWordWrap(True)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.bars = ScoreBars()
        self.similar = QPushButton("Find similar")
        self.similar.setObjectName("findSimilarButton")
        self.similar.setToolTip("Rank all images by similarity to this one")
        self.similar.clicked.connect(lambda: self.path and self.find_similar.emit(self.path))
        self.similar.setEnabled(False)

        # Preview, name, bars and the button stack in one scrolled column: when the panel is
        # shorter than they need (an 800×600 window), the column scrolls; nothing is drawn over
        # anything else, which a squeezed layout would do.
        content = QWidget()
        content.setObjectName("detailsContent")
        column = QVBoxLayout(content)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(self.preview, 1)
        column.addWidget(self.title)
        column.addWidget(self.bars)
        column.addWidget(self.similar, 0, Qt.AlignmentFlag.AlignRight)
        self.scroll = QScrollArea()
        self.scroll.setObjectName("detailsScroll")
        self.scroll.setWidget(content)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.scroll.setMinimumHeight(60)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll)
        previews.ready.connect(lambda path: path == self.path and self._show_preview())
        for event in ("scores", "reset"):
            session.on(event, self.refresh)
        session.on("changed", lambda rows: self.refresh())
        session.on("options", lambda _keys: self.refresh())

    def show_path(self, path: Path | None) -> None:
        self.path = path
        if path is not None:
            self.previews.request([path])
        self._show_preview()
        self.refresh()

    def _show_preview(self) -> None:
        image = self.previews.get(self.path) if self.path is not None else None
        if image is None:
            self.preview.setPixmap(QPixmap())
            self.preview.setText("Select an image to see every label's score" if self.path is None
                                 else "loading preview…")
            return
        pixmap = QPixmap.fromImage(image)
        size = self.preview.size().boundedTo(self.preview.maximumSize())
        self.preview.setPixmap(pixmap.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                                             Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._show_preview()

    def _set_similar(self, possible: bool) -> None:
        """One state for both Find similar buttons: an image is shown here and it is encoded."""
        self.similar.setEnabled(possible)
        self.similar_possible.emit(possible)

    def refresh(self) -> None:
        row = self.session.row_of(self.path) if self.path is not None else None
        if row is None:
            self.path = None
            self.title.setText("")
            self.bars.set_scores([])
            self._set_similar(False)
            self._show_preview()
            self.bars.hide()  # the preview's "Select an image…" says it all; no "No scores yet" under it
            self.similar.hide()
            return
        item = self.session.items[row]
        decision = self.session.decision(row)
        self.bars.show()
        self.similar.show()
        self._set_similar(item.vector is not None)
        if item.error:
            self.title.setText(f"<b>{item.path.name}</b><br><span style='color:#c62828'>⚠ {item.error}</span>")
        elif decision is None:
            self.title.setText(f"<b>{item.path.name}</b><br>not classified yet")
        else:
            verdict = (f"<span style='color:#c77c02'>unsure</span> (best: {decision.top_label})"
                       if decision.unsure else f"<b>{decision.label}</b>")
            self.title.setText(f"<b>{item.path.name}</b><br>{verdict} · {decision.score:.1%}")
        chosen = set(decision.labels) if decision else set()
        self.bars.set_scores(self.session.ranked_scores(row), chosen,
                             bool(decision and decision.unsure))
