"""Whether a run's model learnt its dataset at all.

A run's *skill* at an epoch is 1 - its validation error / the validation error of
predicting the average training label for every image: 1 for a perfect model, 0
for one that learnt nothing from the images. Under :data:`NOT_LEARNT_SKILL` the
residuals are large everywhere, so the flags say little about the labels (LSP at
64 px from scratch: skill 0.15). Each epoch stores its skill in its metrics; a
finished run's warning is read from its last epoch, so it holds for a run that
was resumed or trained elsewhere and imported (``gumshoe import-run``)."""

from __future__ import annotations

from core.project import Project, Run

NOT_LEARNT_SKILL = 0.3
NOT_LEARNT = "the model has not learnt this dataset"  # how the warning starts


def skill(error: float | None, baseline: float | None) -> float | None:
    """1 - error / baseline (None where either is unknown)."""
    if error is None or baseline is None or not baseline > 0:
        return None
    return 1.0 - error / baseline


def not_learnt_message(value: float | None, task: str) -> str:
    """The warning for a model of this skill ("" when it learnt the data, or when
    there was nothing to validate on)."""
    if value is None or value >= NOT_LEARNT_SKILL:
        return ""
    what = "point error" if task == "landmarks" else "age error"
    return (f"{NOT_LEARNT}: its validation {what} is "
            f"{100 * (1 - value):.0f} % of the average label's, so its flags say little "
            "about the labels (train longer, at a larger image size, or from a pretrained "
            "backbone)")


def run_warning(project: Project, run: Run) -> str:
    """The warning of a finished run whose model learnt nothing, from its last
    epoch ("" otherwise)."""
    if run.status != "finished":
        return ""
    epochs = project.epochs(run.id)
    value = epochs[-1].metrics.get("skill") if epochs else None
    task = project.schema.task if project.schema else "landmarks"
    return not_learnt_message(value if isinstance(value, (int, float)) else None, task)
