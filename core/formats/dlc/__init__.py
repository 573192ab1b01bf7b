"""DeepLabCut labelled data: a project folder or one ``CollectedData_<scorer>.csv``/``.h5``.

A DeepLabCut project keeps, per video, ``labeled-data/<video>/CollectedData_<scorer>.h5``
(a pandas table under the key ``df_with_missing``) and the same table as ``.csv``,
beside the extracted frames. Columns are a MultiIndex whose header rows are
``scorer``, (multi-animal projects only) ``individuals``, ``bodyparts`` and
``coords`` (``x``, ``y``; machine labels add ``likelihood``, ignored here). Rows
are images, their paths relative to the project folder, either one cell
(``labeled-data/video/img001.png``, ``\\`` on Windows) or, since DeepLabCut 2.3,
three (``labeled-data``, ``video``, ``img001.png``). An empty cell (NaN in the
``.h5``) means "not labelled": the point is missing, not at (0, 0).

Reading: the ``.h5`` of a video folder wins over its ``.csv`` (DeepLabCut trains
from the ``.h5``); the ``.csv`` is read when there is no ``.h5`` or it cannot be
read. Keys are the image path with ``/`` (``labeled-data/m4s1/img0000.png``), the
same from either file and either operating system; a multi-animal file gives one
sample per labelled individual, keyed ``path#individual``. ``config.yaml`` names
the bodyparts (their order is the schema's) and the skeleton; left/right flip
pairs come from the names (``leftear``/``rightear``, ``l_paw``/``r_paw``, ...;
see :func:`core.schemas.infer_flip_pairs`). Without a config the header's
bodyparts are used. Unique bodyparts of multi-animal projects (individual
``single``) are not imported: a project holds one keypoint set.

Writing (:func:`write`): a folder becomes a DeepLabCut project (``config.yaml``,
``labeled-data/<video>/`` with the images copied and ``CollectedData_<scorer>.h5``
+ ``.csv``); a ``.h5`` or ``.csv`` file name writes that one table and its twin
with the other suffix, to drop into an existing project's video folder. The
scorer is the source project's (its ``config.yaml``, else its ``CollectedData_``
file name), else ``gumshoe``.
"""

from __future__ import annotations

from core.formats.dlc.project import CONFIG, PREFIX, SINGLE, load_config, project_root
from core.formats.dlc.reader import DlcReader, _table_items
from core.formats.dlc.tables import H5_KEY, Table, parse_csv, parse_h5
from core.formats.dlc.writer import DEFAULT_SCORER, dlc_path, write

__all__ = ["CONFIG", "DEFAULT_SCORER", "H5_KEY", "PREFIX", "SINGLE", "DlcReader", "Table",
           "_table_items", "dlc_path", "load_config", "parse_csv", "parse_h5", "project_root",
           "write"]
