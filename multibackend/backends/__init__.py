"""One package per Keras backend, at the bottom of the stack: everything that differs between them, and only that.

`backend(name)` is a backend's module (see `base.Backend`): what to set before
Keras and the framework are imported, the device probes, the precision
switches, and what it can do (`has_loop`: its framework loop, the labelled fast
path beside `fit`). Outside this package no code compares a backend's name to
choose behaviour (`tests/test_layout.py` checks it). The backends are the
folders here (`NAMES`, in the order of their `ORDER`): adding one is a folder,
and an extra in `pyproject.toml` that installs its framework.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from types import ModuleType

UNORDERED = 1000  # the place of a backend without ORDER: after the others (the noxfile reads it the same way)


def _discovered() -> tuple[str, ...]:
    """The backend packages in this folder, in the order of their `ORDER` (then by name)."""
    names = [module.name for module in pkgutil.iter_modules(__path__) if module.ispkg]
    order = {name: getattr(importlib.import_module(f"{__name__}.{name}"), "ORDER", UNORDERED) for name in names}
    return tuple(sorted(names, key=lambda name: (order[name], name)))


NAMES = _discovered()


def backend(name: str) -> ModuleType:
    """The module of backend `name` (see `base.Backend`); it imports no framework.

    Raises:
        ValueError: for a name that is not in `NAMES`.
    """
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r} (choose from {', '.join(NAMES)})")
    return importlib.import_module(f"{__name__}.{name}")


def installed() -> list[str]:
    """The backends whose framework can be imported in this environment, in the order of `NAMES`."""
    return [name for name in NAMES if importlib.util.find_spec(backend(name).PACKAGE) is not None]


def has_loop(name: str) -> bool:
    """Whether backend `name` has a framework loop (`epoch_trainer`, the fast path beside `fit`)."""
    return hasattr(backend(name), "epoch_trainer")
