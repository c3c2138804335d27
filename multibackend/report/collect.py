"""Reading what the commands wrote: results files (one per run), `parity.json` and `bench.json`."""

from __future__ import annotations

import re
from pathlib import Path

from multibackend.results import BenchResult, JsonRecord, ParityResult, RunResult, read_json_file, read_results
from multibackend.runtime.errors import ResultsError, UsageError

RESULTS_NAME = re.compile(
    r"^(?P<example>xor|mnist)-(?P<backend>[a-z]+)-(?P<device>cpu|gpu)(?:-(?P<trainer>loop))?\.json$"
)


def collect_results(folders: list[Path], warn=print, exclude=()) -> dict[tuple[str, str, str, str], RunResult]:
    """Reads every results file in `folders`; bad ones are named in a warning and skipped.

    Args:
        folders: Folders holding `<example>-<backend>-<device>[-loop].json` files.
        warn: Called with one line per skipped file.
        exclude: Paths not to read (a crashed run's stale file).

    Returns:
        `(example, backend, device, trainer)` -> its run; the newest wins a tie.
    """
    skipped = {Path(path).resolve() for path in exclude}
    rows: dict[tuple[str, str, str, str], RunResult] = {}
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"results folder {folder} does not exist")
        for path in sorted(folder.glob("*.json")):
            match = RESULTS_NAME.match(path.name)
            if not match or path.resolve() in skipped:
                continue  # parity.json, bench.json, ...: not a run's results
            try:
                run = read_results(path, example=match["example"])
                named = (match["backend"], match["device"], match["trainer"] or "fit")
                holds = (run.backend, run.device, run.trainer)
                if named != holds:
                    raise ResultsError(
                        f"{path}: its name says {'/'.join(named)} but it holds {'/'.join(map(str, holds))}"
                    )
            except ResultsError as error:
                warn(f"warning: skipping {error}")
                continue
            key = (run.example, run.backend, run.device, run.trainer)
            if key not in rows or run.created > rows[key].created:
                rows[key] = run
    return rows


def group_runs(runs: list[RunResult], *fields: str) -> dict:
    """Runs grouped by one field (key: its value) or several (key: tuple of values), in order."""
    grouped: dict = {}
    for run in runs:
        key = getattr(run, fields[0]) if len(fields) == 1 else tuple(getattr(run, field) for field in fields)
        grouped.setdefault(key, []).append(run)
    return grouped


def label(run: RunResult) -> str:
    """A run's short name in tables and plots: `backend (device)`."""
    return f"{run.backend} ({run.device})"


def misclassified_overlap(runs: list[RunResult]) -> dict:
    """How many misclassified test digits all backends share, and how many only one gets wrong."""
    sets = {label(run): {index for index, _, _ in run.misclassified or []} for run in runs}
    shared = set.intersection(*sets.values()) if sets else set()
    union = set.union(*sets.values()) if sets else set()
    unique = {
        label: len(wrong - set.union(set(), *(s for other, s in sets.items() if other != label)))
        for label, wrong in sets.items()
    }
    return {
        "shared_by_all": len(shared),
        "wrong_anywhere": len(union),
        "unique": unique,
        "total": {k: len(v) for k, v in sets.items()},
    }


def read_parity(folders: list[Path], warn) -> ParityResult | None:
    """The first valid `parity.json` in `folders` (see `schemas/parity.schema.json`); invalid ones are named and skipped."""
    return _read_first(folders, ParityResult, warn)


def read_bench(folders: list[Path], warn) -> BenchResult | None:
    """The first valid `bench.json` in `folders` (see `schemas/bench.schema.json`); invalid ones are named and skipped."""
    return _read_first(folders, BenchResult, warn)


def _read_first(folders: list[Path], record: type[JsonRecord], warn):
    for folder in folders:
        path = folder / f"{record.SCHEMA}.json"
        if path.exists():
            try:
                payload = read_json_file(path)
            except ResultsError as error:
                warn(f"warning: skipping {error}")
                continue
            try:
                return record.from_json(payload)
            except ResultsError as error:
                warn(f"warning: skipping {path}: {error}")
    return None
