"""The import dialog shows the schema a keypoint source brought (flip pairs inferred
from names included); the export dialog offers a file or a folder per format."""

from __future__ import annotations

from pathlib import Path

from core.project import Project


def test_import_dialog_shows_keypoints_and_flip_pairs(qtbot, dataset, tmp_path):
    from app.dialogs.import_dialog import ImportDialog

    path = tmp_path / "mice.gumshoe"
    Project.create(path).close()
    dlg = ImportDialog(path)
    qtbot.addWidget(dlg)
    dlg.source.setText(str(dataset("dlc-openfield")))  # format detected
    with qtbot.waitSignal(dlg.imported, timeout=60_000) as sig:
        dlg.start()
    dlg.worker.wait()
    res = sig.args[0]
    assert res["added"] == 116 and res["format"] == "dlc"
    text = dlg.summary.text()
    assert "Flip pairs:</b> leftear/rightear" in text
    assert "snout, leftear, rightear, tailbase" in text


def test_export_dialog_suggests_a_file_or_a_folder(qtbot, project_path):
    from app.dialogs.export_dialog import ExportDialog

    dlg = ExportDialog(project_path)
    qtbot.addWidget(dlg)
    stem = Path(project_path).with_suffix("").name + "-clean"
    for fmt, name in (("dlc", stem), ("slp", stem + ".slp"), ("coco", stem + ".json"),
                      ("yolo-pose", stem), ("cvat", stem)):
        dlg.fmt.setCurrentIndex(dlg.fmt.findData(fmt))
        assert Path(dlg.out.text()).name == name, fmt
