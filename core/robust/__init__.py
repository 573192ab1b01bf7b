"""Robust training methods: DeepGUM and the baselines, one module each, behind one
protocol (:class:`core.robust.base.Method`).

Adding a method takes one new module with a :class:`~core.robust.base.Method`
subclass and one line in :data:`REGISTRY`. Modules are imported only when their
method is built, so listing the names costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.robust.base import Method, Problem
    from core.training.config import TrainConfig

# name -> "module:class"; the first is the default
REGISTRY: dict[str, str] = {
    "deepgum": "core.robust.deepgum:DeepGUM",
    "deepgum-global": "core.robust.deepgum_global:DeepGUMGlobal",
    "rle": "core.robust.rle:RLE",
    "l2": "core.robust.l2:L2",
    "huber": "core.robust.huber:Huber",
    "tukey": "core.robust.tukey:Tukey",
    "barron": "core.robust.barron:Barron",
}

METHODS: tuple[str, ...] = tuple(REGISTRY)


def method_class(name: str) -> type[Method]:
    """The class registered as ``name``."""
    try:
        where = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r} (expected one of {', '.join(REGISTRY)})") from None
    module, cls = where.split(":")
    return getattr(importlib.import_module(module), cls)


def make_method(name: str, problem: Problem, config: TrainConfig) -> Method:
    """A fresh method ``name`` for ``problem`` with the run's settings."""
    return method_class(name)(problem, config)
