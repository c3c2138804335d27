"""Inside a verified run: Keras's downloads go through one cache that every run shares, and offline they fail at once.

Each run has a HOME of its own, so Keras's own cache (`~/.keras/datasets`) would be a new, empty one per run: the
same archive fetched once per backend per file. Here `keras.utils.get_file` (and so every `keras.datasets` loader)
uses the cache that verify names (`--data-cache`, default the caller's Keras folder) unless the course file names
its own, and holds a lock per URL while it looks and downloads: runs on other backends that want the same file at
the same moment wait, then find it whole (with its hash checked, where the caller gave one, as `get_file` does).
With `offline`, a download that the cache cannot answer raises `DatasetMissing` at once, naming the URL and the
cache, instead of a network error after minutes. Every file asked for is recorded (`fetched`).
Like the sandbox, this module changes Keras only when the course file imports it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import inspect
import os
import urllib.parse
from pathlib import Path

FILE_UTILS = "keras.src.utils.file_utils"
LOCKS = ".multibackend-locks"

_cache = ""
_offline = False
fetched: list[dict] = []  # {origin, file, downloaded, missing (offline, not in the cache)}, in the order asked


class DatasetMissing(Exception):
    """A download that the shared cache cannot answer in an offline run."""


def install(cache: str, offline: bool) -> None:
    """Routes Keras's downloads in this process through `cache` (offline: no download at all)."""
    from multibackend.runtime.import_hooks import on_import

    global _cache, _offline
    _cache, _offline = cache, offline
    on_import(FILE_UTILS, _share_downloads)


def _share_downloads(module) -> None:
    if getattr(module.get_file, "__multibackend_shared__", False):
        return
    get_file, urlretrieve = module.get_file, module.urlretrieve
    signature = inspect.signature(get_file)

    @functools.wraps(get_file)
    def shared_get_file(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        if bound.arguments.get("cache_dir") is None and _cache:
            bound.arguments["cache_dir"] = _cache
        origin = str(bound.arguments.get("origin") or "")
        name = str(bound.arguments.get("fname") or os.path.basename(urllib.parse.urlsplit(origin).path))
        fetched.append({"origin": origin, "file": name, "downloaded": False})
        with _locked(bound.arguments.get("cache_dir") or "", origin):
            return get_file(*bound.args, **bound.kwargs)

    @functools.wraps(urlretrieve)
    def counted_urlretrieve(url, *args, **kwargs):
        entry = next((entry for entry in reversed(fetched) if entry["origin"] == str(url)), {})
        if _offline:
            entry["missing"] = True
            raise DatasetMissing(f"dataset missing: {url} (not in the cache {_cache}; offline)")
        entry["downloaded"] = True
        return urlretrieve(url, *args, **kwargs)

    shared_get_file.__multibackend_shared__ = True
    module.get_file, module.urlretrieve = shared_get_file, counted_urlretrieve


@contextlib.contextmanager
def _locked(cache: str, origin: str):
    """Holds an exclusive lock on `origin` in `cache` (none where the cache cannot be written: Keras then uses a
    temporary folder of its own)."""
    folder = Path(os.path.expanduser(cache or "~/.keras")) / LOCKS
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stream = open(folder / (hashlib.sha1(origin.encode()).hexdigest()[:20] + ".lock"), "w")  # noqa: SIM115
    except OSError:
        yield
        return
    with stream:
        fcntl.flock(stream, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(stream, fcntl.LOCK_UN)
