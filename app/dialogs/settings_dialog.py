"""Preferences: annotator name and theme (training defaults live in the panel)."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLineEdit, QWidget

from app.settings import THEMES, settings


class SettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        st = settings()
        form = QFormLayout(self)
        self.annotator = QLineEdit(st.annotator)
        self.annotator.setToolTip("Your name: every edit you make is stored under it")
        form.addRow("Annotator name", self.annotator)
        self.theme = QComboBox()
        for t in THEMES:
            self.theme.addItem({"system": "Follow the system", "light": "Light",
                                "dark": "Dark"}[t], t)
        self.theme.setCurrentIndex(self.theme.findData(st.theme))
        form.addRow("Theme", self.theme)
        bb = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                              | QDialogButtonBox.StandardButton.Cancel)
        bb.accepted.connect(self.accept)
        bb.rejected.connect(self.reject)
        form.addRow(bb)

    def save(self) -> None:
        st = settings()
        st.annotator = self.annotator.text()
        st.theme = self.theme.currentData()
        st.sync()
