"""DeepGUM without a scale head: one inlier variance per output dimension for all
images (the published model), with a per-image variance multiplier fitted when
scoring (``GaussianUniformMixture.fit_sample_scales``, capped at 1 so it only
makes an image the network places closely stricter). Kept as the baseline the
per-point uncertainty of :class:`~core.robust.deepgum.DeepGUM` must beat."""

from __future__ import annotations

from core.robust.deepgum import DeepGUM


class DeepGUMGlobal(DeepGUM):
    name = "deepgum-global"
    predicts_scale = False
    description = "DeepGUM with one variance per dimension and a per-image multiplier"
