from __future__ import annotations


def test_window_opens_and_shows_top_sample(window):
    m = window.queue.model
    assert m.rowCount() == 40
    assert window.editor.sample is not None
    assert window.editor.sample.id == m.sample_id(0)
