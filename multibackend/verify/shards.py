"""A course split across machines: each takes a balanced share of the (file, backend) runs; their findings merge.

`multibackend verify --shard K/N` (and the pytest plugin's `--multibackend-shard K/N`) run the K-th of N
shares; `multibackend verify merge DIR...` joins the shards' `verify.json` files into the matrix one
machine would have made. The shares are the same on every machine: longest runs first, each to the
least loaded shard (durations from an earlier `verify.json` when given, as pytest-split does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from multibackend.runtime.errors import UsageError

# The settings that make two shards parts of one run: a merge refuses shards that differ in any.
RUN_SETTINGS = (
    "files",
    "smoke",
    "smoke_sample",
    "seed",
    "offline_datasets",
    "timeout_seconds",
    "compare_outputs",
    "rtol",
    "atol",
    "respect_backend_pins",
    "shell",
)


@dataclass(frozen=True)
class Shard:
    """The `index`-th (from 1) of `count` shares of a course's runs."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """Reads `K/N` (1 <= K <= N).

    Raises:
        ValueError: for anything else, with a message that says what is expected.
    """
    match = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ValueError(f"must be K/N with 1 <= K <= N (the K-th of N shares), got {text!r}")
    return Shard(int(match[1]), int(match[2]))


def earlier_durations(path: str | Path) -> dict[tuple[str, str], float]:
    """The seconds each (file, backend) took in an earlier `verify.json` (a run's or a merge's).

    Raises:
        UsageError: when the file cannot be read or is not a verify results file.
    """
    payload = read_verify_file(Path(path), "--durations-from")
    return {(cell["file"], cell["backend"]): float(cell["seconds"]) for cell in payload["cells"]}


def read_verify_file(path: Path, role: str) -> dict:
    """A `verify.json`, checked against its schema (a folder stands for the `verify.json` in it).

    Raises:
        UsageError: naming `role` (the option or argument), the file and what is wrong with it.
    """
    from multibackend import schemas
    from multibackend.results import read_json_file
    from multibackend.runtime.errors import ResultsError

    if path.is_dir():
        path = path / "verify.json"
    try:
        return schemas.validate("verify", read_json_file(path))
    except ResultsError as error:
        message = str(error) if str(error).startswith(str(path)) else f"{path}: {error}"
        raise UsageError(f"{role} {message}") from None


def assign(
    runs: list[tuple[str, str]], count: int, durations: dict[tuple[str, str], float] | None = None
) -> dict[tuple[str, str], int]:
    """Which shard (from 1) runs each (file, backend): longest first, each to the least loaded shard.

    Args:
        runs: The (file, backend) pairs of the whole course.
        count: The number of shards.
        durations: Seconds from an earlier run; a pair it lacks counts as the mean of those it has (1 s if none).

    Returns:
        The shard of every pair; the same for the same arguments on any machine.
    """
    durations = durations or {}
    known = [durations[run] for run in runs if run in durations]
    default = sum(known) / len(known) if known else 1.0
    load = [0.0] * count
    shards = {}
    for run in sorted(runs, key=lambda run: (-durations.get(run, default), run)):
        lightest = min(range(count), key=lambda shard: (load[shard], shard))
        load[lightest] += durations.get(run, default)
        shards[run] = lightest + 1
    return shards


def runs_of(shard: Shard, runs: list[tuple[str, str]], durations: dict | None = None) -> list[tuple[str, str]]:
    """The pairs of `runs` that `shard` runs, in their given order."""
    shards = assign(runs, shard.count, durations)
    return [run for run in runs if shards[run] == shard.index]


def merge(sources: list[tuple[str, dict]]) -> dict:
    """Joins shards' verify payloads into the payload of one run (verdicts and warnings computed afresh).

    Args:
        sources: (where it came from, payload) for each shard, each already checked against the schema.

    Returns:
        The merged payload, with `merged_from` naming the sources.

    Raises:
        UsageError: for shards of different courses or settings, a run given twice, or a shard missing.
    """
    first_source, first = sources[0]
    for source, payload in sources[1:]:
        differs = [key for key in RUN_SETTINGS if payload.get(key) != first.get(key)]
        if differs:
            raise UsageError(
                f"{source} is not a shard of the same run as {first_source} (differs in: {', '.join(differs)})"
            )
    _check_shards_complete(sources)
    cells: dict[tuple[str, str], tuple[str, dict]] = {}
    for source, payload in sources:
        for cell in payload["cells"]:
            key = (cell["file"], cell["backend"])
            if key in cells:
                raise UsageError(f"{key[0]} under {key[1]} is in both {cells[key][0]} and {source}")
            cells[key] = (source, cell)
    from multibackend.backends import NAMES

    used = {backend for _, payload in sources for backend in payload["backends"]}
    backends = [name for name in NAMES if name in used]
    rows = [cells[file, backend][1] for file in first["files"] for backend in backends if (file, backend) in cells]
    merged = {key: first.get(key) for key in RUN_SETTINGS}
    merged.update(
        backends=backends,
        cells=rows,
        jobs=max(payload.get("jobs") or 1 for _, payload in sources),
        shard=None,
        merged_from=[source for source, _ in sources],
    )
    return merged


def _check_shards_complete(sources: list[tuple[str, dict]]) -> None:
    """Every share of every split is there, once (unsplit runs, from other machines, merge as they are)."""
    seen: dict[tuple[int, tuple], dict[int, str]] = {}
    for source, payload in sources:
        shard = payload.get("shard")
        if not shard:
            continue
        split = (shard["count"], tuple(payload["backends"]))
        given = seen.setdefault(split, {})
        if shard["index"] in given:
            raise UsageError(
                f"shard {shard['index']}/{shard['count']} is given twice: {given[shard['index']]}, {source}"
            )
        given[shard["index"]] = source
    for (count, backends), given in seen.items():
        missing = [f"{index}/{count}" for index in range(1, count + 1) if index not in given]
        if missing:
            raise UsageError(
                f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} of the run under "
                f"{','.join(backends)} missing: a merge of part of a course would pass what never ran"
            )
