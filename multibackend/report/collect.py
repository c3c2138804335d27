"""Reading what the commands wrote: results files (one per run), `parity.json` and `bench.json`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from multibackend import schemas
from multibackend.results import read_results
from multibackend.runtime.errors import ResultsError, UsageError

RESULTS_NAME = re.compile(
    r"^(?P<example>xor|mnist)-(?P<backend>[a-z]+)-(?P<device>cpu|gpu)(?:-(?P<trainer>loop))?\.json$"
)


def collect_results(folders: list[Path], warn=print, exclude=()) -> dict[tuple[str, str, str, str], dict]:
    """Reads every results file in `folders`; bad ones are named in a warning and skipped.

    Args:
        folders: Folders holding `<example>-<backend>-<device>[-loop].json` files.
        warn: Called with one line per skipped file.
        exclude: Paths not to read (a crashed run's stale file).

    Returns:
        `(example, backend, device, trainer)` -> results payload; the newest wins a tie.
    """
    skipped = {Path(path).resolve() for path in exclude}
    rows: dict[tuple[str, str, str, str], dict] = {}
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"results folder {folder} does not exist")
        for path in sorted(folder.glob("*.json")):
            match = RESULTS_NAME.match(path.name)
            if not match or path.resolve() in skipped:
                continue  # parity.json, bench.json, ...: not a run's results
            try:
                payload = read_results(path, example=match["example"])
                named = (match["backend"], match["device"], match["trainer"] or "fit")
                holds = (payload["backend"], payload["device"], payload.get("trainer", "fit"))
                if named != holds:
                    raise ResultsError(
                        f"{path}: its name says {'/'.join(named)} but it holds {'/'.join(map(str, holds))}"
                    )
            except ResultsError as error:
                warn(f"warning: skipping {error}")
                continue
            key = (payload["example"], payload["backend"], payload["device"], payload.get("trainer", "fit"))
            if key not in rows or payload["created"] > rows[key]["created"]:
                rows[key] = payload
    return rows


def group_runs(runs: list[dict], *fields: str) -> dict:
    """Runs grouped by one field (key: its value) or several (key: tuple of values), in order."""
    grouped: dict = {}
    for run in runs:
        key = run[fields[0]] if len(fields) == 1 else tuple(run[field] for field in fields)
        grouped.setdefault(key, []).append(run)
    return grouped


def label(payload: dict) -> str:
    """A run's short name in tables and plots: `backend (device)`."""
    return f"{payload['backend']} ({payload['device']})"


def misclassified_overlap(runs: list[dict]) -> dict:
    """How many misclassified test digits all backends share, and how many only one gets wrong."""
    sets = {label(run): {index for index, _, _ in run["misclassified"]} for run in runs}
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


def read_parity(folders: list[Path], warn) -> dict | None:
    """The first valid `parity.json` in `folders` (see `schemas/parity.schema.json`); invalid ones are named and skipped."""
    return _read_first(folders, "parity", warn)


def read_bench(folders: list[Path], warn) -> dict | None:
    """The first valid `bench.json` in `folders` (see `schemas/bench.schema.json`); invalid ones are named and skipped."""
    return _read_first(folders, "bench", warn)


def _read_first(folders: list[Path], kind: str, warn) -> dict | None:
    for folder in folders:
        path = folder / f"{kind}.json"
        if path.is_file():
            try:
                return schemas.validate(kind, json.loads(path.read_text()))
            except (OSError, ValueError) as error:
                warn(f"warning: skipping {path}: unreadable ({error})")
            except ResultsError as error:
                warn(f"warning: skipping {path}: {error}")
    return None
