"""Incremental verification: a run whose inputs have not changed since it last ran is not run again.

A run's inputs are what could change its outcome: the file's code (a script's text; a notebook's code cells and,
when outputs are compared, their stored outputs), the settings that reach the run, the backend with its
framework's and Keras's versions, the downloaded files it read (each by size and modification time in the
cache), and what the environment lacked (the modules the file imports that are not installed here, and those its
errors named). `--state DIR` keeps, per (file, backend), the digest of those inputs from its last run, with the
row it ended with; the next `verify` with the same folder shows such a run as "unchanged since DATE" with that
outcome, passed or not, without running it: a book whose chapters fail for want of a package or a dataset is not
run again until the file, the settings or the environment changes. A run that timed out always runs again (its
outcome depends on the machine's load); `--rerun failed` also runs every run that did not pass, `--rerun all`
everything. The folder is what CI caches between pushes.
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
from multibackend.verify.files import importable, missing_packages, read_notebook
from multibackend.verify.model import Run, VerifyOptions
from multibackend.verify.verdicts import missing_modules

STATE_FILE = "verify-state.json"
RERUN_MODES = ("changed", "failed", "all")
FORMAT = 2
NEVER_REUSED = ("timed out",)


class RunState:
    """The runs of earlier invocations, by (file, backend), kept in `folder/verify-state.json`."""

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
            if not isinstance(stored, dict) or stored.get("format") not in (1, FORMAT):
                raise ValueError("not a verify state file of this version")
            runs = stored["runs"]
            if not isinstance(runs, dict):
                raise ValueError("its runs are not a mapping")
        except (OSError, ValueError, KeyError) as error:
            raise UsageError(f"--state {self.path.parent}: {STATE_FILE} cannot be used ({error})") from None
        # The first format's digests leave out what the environment lacked: none of its runs could be reused.
        return runs if stored["format"] == FORMAT else {}

    def reusing(self, run: Callable[[Path, str], Run]) -> Callable[[Path, str], Run]:
        """`run`, unless the (file, backend) run's inputs are those of its last run: then that run's row, marked."""

        def run_or_reuse(path: Path, backend: str) -> Run:
            key = f"{path}\0{backend}"
            earlier = self.runs.get(key)
            if (
                earlier
                and self._reusable(earlier["run"])
                and earlier["inputs"] == inputs_digest(path, backend, self.options, earlier["run"])
            ):
                return Run(**{**earlier["run"], "unchanged_since": earlier["ran"]})
            done = run(path, backend)
            row = dataclasses.asdict(done)
            entry = {
                "inputs": inputs_digest(path, backend, self.options, row),
                "ran": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "run": row,
            }
            with self._lock:
                if done.status in NEVER_REUSED:
                    self.runs.pop(key, None)
                else:
                    self.runs[key] = entry
            return done

        return run_or_reuse

    def _reusable(self, row: dict) -> bool:
        return self.rerun == "changed" or (self.rerun == "failed" and row["status"] == "passed")

    def save(self) -> None:
        """Writes the state whole (a reader never sees half of one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {"format": FORMAT, "runs": self.runs})


def inputs_digest(path: Path, backend: str, options: VerifyOptions, row: dict) -> str:
    """The digest of what could change a run's outcome (see the module's docstring).

    Args:
        path: The file.
        backend: The backend asked for.
        options: The run's settings.
        row: The run's row (a `Run` as a dict): the downloads it read, counted as the cache holds them now, and the
            packages its errors named missing, counted as this environment has them now.

    Returns:
        A hex digest.
    """
    recorded = {key: value for key, value in options.recorded().items() if key not in ("jobs", "data_cache")}
    parts = {
        "code": _code(path, options),
        "settings": recorded,
        "backend": backend,
        "versions": [_version("keras"), _version(backend_module(backend).PACKAGE)],
    }
    parts["downloads"] = _downloads_state(row.get("downloads", []), options.data_cache)
    parts["lacking"] = _lacking(path, row)
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


def _lacking(path: Path, row: dict) -> dict:
    """What the environment lacks for this file now: the modules it imports that are not installed, and whether
    each module the run's errors named missing can be imported (installed since, or still missing)."""
    errors = [row.get("error", ""), *(cell.get("error", "") for cell in row.get("failed_cells", []))]
    named = sorted({module for error in errors for module in missing_modules(error)})
    return {
        "imports": sorted(found.module for found in missing_packages(path)),
        "named": {module: importable(module, path.parent) for module in named},
    }


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
