"""First start: who is annotating? Every edit is recorded under this name."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from app.settings import os_account


class AnnotatorDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Who is annotating?")
        v = QVBoxLayout(self)
        text = QLabel("Every label you change and every review decision is stored in the "
                      "project file under your name, so that a team can see who did what. "
                      "You can change it later in Preferences.")
        text.setWordWrap(True)
        v.addWidget(text)
        self.name = QLineEdit(os_account())
        self.name.selectAll()
        self.name.setPlaceholderText("Your name")
        v.addWidget(self.name)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok)
        bb.accepted.connect(self.accept)
        v.addWidget(bb)
        self.setMinimumWidth(420)

    def chosen(self) -> str:
        return self.name.text().strip() or os_account()
