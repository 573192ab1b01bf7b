"""Look and feel: the window fits 1280x800 and 1920x1080 (also after being made
smaller), and the texts that were clipped are whole."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt


def _text_fits(widget, text: str, width: int, pad: int = 8) -> bool:  # noqa: ANN001
    return widget.fontMetrics().horizontalAdvance(text) + pad <= width


def test_the_window_fits_both_sizes_and_nothing_is_clipped(window, qtbot):
    win = window
    for size in ((1920, 1080), (1280, 800)):  # the larger first: the window must shrink
        win.resize(*size)
        win._size_docks()
        qtbot.wait(200)
        assert (win.width(), win.height()) == size
        # the queue's columns hold their headers and their texts
        table, m = win.queue.table, win.queue.model
        hh = table.horizontalHeader()
        for col in range(1, m.columnCount()):
            if not hh.isSectionHidden(col):
                head = m.headerData(col, Qt.Orientation.Horizontal)
                assert _text_fits(hh, head, hh.sectionSize(col), 12), (size, head)
        sample = m.data(m.index(0, 1))
        assert _text_fits(table, sample, hh.sectionSize(1)), (size, sample)
        # the training buttons, Resume included
        panel = win.training
        for b in (panel.start_btn, panel.pause_btn, panel.stop_btn):
            for text in (b.text(), "Resume") if b is panel.pause_btn else (b.text(),):
                need = b.fontMetrics().horizontalAdvance(text) + b.iconSize().width() + 12
                assert need <= b.width(), (size, text, b.width())
        # the side card's point list: its value header (bold, padded 6 px a side) is whole
        side = win.editor.side
        from PySide6.QtGui import QFont, QFontMetrics

        bold = QFont(side.points.horizontalHeader().font())
        bold.setBold(True)
        head = side.point_model.headerData(1, Qt.Orientation.Horizontal)
        assert QFontMetrics(bold).horizontalAdvance(head) + 14 <= side.points.columnWidth(1), \
            (size, head, side.points.columnWidth(1))
        # the side card's legend is in view
        area = side.parent().parent()
        bottom = side.legend.mapTo(area.viewport(), QPoint(0, side.legend.height()))
        assert bottom.y() <= area.viewport().height(), size
