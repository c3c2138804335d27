"""Running a function on a module right after it is first imported, without importing it ourselves.

Code run on behalf of a course file (the offline datasets, verify's sandbox)
must change one Keras module only if and when the course file imports it: a
file that never imports Keras must not pay for it, and Keras must not be
imported before the course file has chosen how (its backend is fixed then).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable
from types import ModuleType

_callbacks: dict[str, list[Callable[[ModuleType], None]]] = {}


class _CallingLoader(importlib.abc.Loader):
    def __init__(self, loader, callbacks: list[Callable[[ModuleType], None]]):
        self._loader = loader
        self._callbacks = callbacks

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        for callback in self._callbacks:
            callback(module)


class _OnImport(importlib.abc.MetaPathFinder):
    """Wraps the loader of each watched module so that its callbacks run after the module's code."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _callbacks:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _CallingLoader(spec.loader, _callbacks[fullname])
        return spec


def on_import(module_name: str, callback: Callable[[ModuleType], None]) -> None:
    """Calls `callback(module)` once `module_name` is imported (at once when it already is), and on every reload.

    Args:
        module_name: The full dotted name of the module.
        callback: Called with the module object after its code ran.
    """
    callbacks = _callbacks.setdefault(module_name, [])
    if callback not in callbacks:
        callbacks.append(callback)
    if not any(isinstance(finder, _OnImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OnImport())
    if module_name in sys.modules:
        callback(sys.modules[module_name])


def watched(module_name: str, callback: Callable[[ModuleType], None]) -> bool:
    """Whether `callback` is registered for `module_name`."""
    return callback in _callbacks.get(module_name, [])
