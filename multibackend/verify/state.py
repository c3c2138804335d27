"""Incremental verification: a run whose inputs have not changed since it passed is not run again.

A run's inputs are what could change its outcome: the file's code (a script's text; a notebook's code cells and,
when outputs are compared, their stored outputs), the settings that reach the run, the backend with its
framework's and Keras's versions, and the downloaded files it read (each by size and modification time in the
cache). `--state DIR` keeps, per (file, backend), the digest of those inputs from its last pass, with the row it
passed with; the next `verify` with the same folder shows such a run as "unchanged since DATE" (passed) without
running it. Runs that did not pass are always run again; `--rerun all` runs everything. The folder is what CI
caches between pushes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from multibackend.backends import backend as backend_module
from multibackend.results import write_json_atomic
from multibackend.runtime.errors import UsageError
from multibackend.verify.files import read_notebook
from multibackend.verify.model import Run, VerifyOptions

STATE_FILE = "verify-state.json"
RERUN_MODES = ("changed", "all")
FORMAT = 1


class RunState:
    """The passed runs of earlier invocations, by (file, backend), kept in `folder/verify-state.json`."""

    def __init__(self, folder: Path, options: VerifyOptions, rerun: str = RERUN_MODES[0]):
        self.path = folder / STATE_FILE
        self.options = options
        self.rerun = rerun
        self.runs: dict[str, dict] = self._read()
        self._lock = threading.Lock()

    def _read(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            stored = json.loads(self.path.read_text())
            if not isinstance(stored, dict) or stored.get("format") != FORMAT or not isinstance(stored["runs"], dict):
                raise ValueError("not a verify state file of this version")
        except (OSError, ValueError, KeyError) as error:
            raise UsageError(f"--state {self.path.parent}: {STATE_FILE} cannot be used ({error})") from None
        return stored["runs"]

    def reusing(self, run: Callable[[Path, str], Run]) -> Callable[[Path, str], Run]:
        """`run`, unless the (file, backend) run's inputs are those of its last pass: then that pass, marked."""

        def run_or_reuse(path: Path, backend: str) -> Run:
            key = f"{path}\0{backend}"
            earlier = self.runs.get(key)
            if (
                self.rerun == "changed"
                and earlier
                and earlier["inputs"] == inputs_digest(path, backend, self.options, earlier["run"]["downloads"])
            ):
                return Run(**{**earlier["run"], "unchanged_since": earlier["passed"]})
            done = run(path, backend)
            if done.status == "passed":
                inputs = inputs_digest(path, backend, self.options, done.downloads)
                passed = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
                with self._lock:
                    self.runs[key] = {"inputs": inputs, "passed": passed, "run": dataclasses.asdict(done)}
            else:
                with self._lock:
                    self.runs.pop(key, None)
            return done

        return run_or_reuse

    def save(self) -> None:
        """Writes the state whole (a reader never sees half of one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"format": FORMAT, "runs": self.runs})


def inputs_digest(path: Path, backend: str, options: VerifyOptions, downloads: list[dict]) -> str:
    """The digest of what could change a run's outcome (see the module's docstring).

    Args:
        path: The file.
        backend: The backend asked for.
        options: The run's settings.
        downloads: The files the run read through Keras's downloads (`Run.downloads`): as the cache holds them now.
    """
    recorded = {key: value for key, value in options.recorded().items() if key not in ("jobs", "data_cache")}
    parts = {
        "code": _code(path, options),
        "settings": recorded,
        "backend": backend,
        "versions": [_version("keras"), _version(backend_module(backend).PACKAGE)],
    }
    parts["downloads"] = _downloads_state(downloads, options.data_cache)
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _code(path: Path, options: VerifyOptions) -> str:
    if path.suffix != ".ipynb":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    cells = [
        {
            "source": cell.get("source"),
            "tags": cell.get("metadata", {}).get("tags", []),
            "outputs": cell.get("outputs") if options.check.mode != "off" else None,
        }
        for cell in read_notebook(path)["cells"]
        if cell.get("cell_type") == "code"
    ]
    return hashlib.sha256(json.dumps(cells, sort_keys=True).encode()).hexdigest()


def _version(package: str) -> str:
    for distribution in metadata.packages_distributions().get(package, [package]):
        try:
            return f"{package} {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:
            continue
    return f"{package} (not installed)"


def _downloads_state(downloads: list[dict], cache: str) -> list:
    """Size and modification time of each downloaded file the run read (and what was extracted from it), as the
    cache holds them now."""
    found = []
    for download in downloads:
        files = sorted((Path(cache) / "datasets").glob(download["file"] + "*")) if cache else []
        found.append([download["origin"], [(file.name, *_stat(file)) for file in files]])
    return found


def _stat(file: Path) -> tuple[int, int]:
    try:
        stat = file.stat()
    except OSError:
        return (-1, -1)
    return (stat.st_size, stat.st_mtime_ns)
