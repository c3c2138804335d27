"""One package per Keras backend, at the bottom of the stack: everything that differs between them, and only that.

`backend(name)` is a backend's module (see `base.Backend`): what to set before
Keras and the framework are imported, the device probes, the precision
switches, and its framework loop (the labelled fast path beside `fit`).
Outside this package no code compares a backend's name to choose behaviour
(`tests/test_layout.py` checks it). Adding a backend is a folder here, its name
in `NAMES` and its extra in `pyproject.toml`.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

NAMES = ("torch", "tensorflow", "jax")


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
