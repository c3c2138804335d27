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
from multibackend.verify.model import VerifyOptions

# The settings that make two shards parts of one run: a merge refuses shards that differ in any. Each shard may run its
# share with its own --jobs and its machine's download cache; every other setting that verify.json records must be
# the same.
MACHINE_SETTINGS = ("jobs", "data_cache")
RUN_SETTINGS = ("files", *(key for key in VerifyOptions().recorded() if key not in MACHINE_SETTINGS))


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
    from multibackend.runtime.outputs import name_error

    problem = name_error(path)
    if problem:
        raise UsageError(f"{role} {str(path)[:60]}...: {problem}")
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


def plan(runs: list[tuple[str, str]], count: int = 1, durations: dict | None = None) -> list[dict]:
    """The plan that a run records: every (file, backend) pair of the course with the shard that runs it.

    Args:
        runs: The (file, backend) pairs of the whole course.
        count: The number of shards (1: a whole run).
        durations: Seconds from an earlier run, as `assign` takes them.

    Returns:
        `{file, backend, shard}` per pair, in the order of `runs`.
    """
    shards = assign(runs, count, durations)
    return [{"file": file, "backend": backend, "shard": shards[file, backend]} for file, backend in runs]


def runs_of(shard: Shard, runs: list[tuple[str, str]], durations: dict | None = None) -> list[tuple[str, str]]:
    """The pairs of `runs` that `shard` runs, in their given order."""
    shards = assign(runs, shard.count, durations)
    return [run for run in runs if shards[run] == shard.index]


def merge(sources: list[tuple[str, dict]]) -> dict:
    """Joins shards' verify payloads into the payload of one run (verdicts and warnings computed afresh).

    Every source holds exactly its share of the plan it records; sources that share runs share one plan; every
    share of every plan is there once. So a merge holds every run of the course once, or is refused.

    Args:
        sources: (where it came from, payload) for each shard, each already checked against the schema.

    Returns:
        The merged payload, with `merged_from` naming the sources.

    Raises:
        UsageError: for shards of different courses, settings or plans, a run given twice or missing, a share
            missing, or a run its plan does not hold.
    """
    first_source, first = sources[0]
    for source, payload in sources[1:]:
        differs = [key for key in RUN_SETTINGS if payload.get(key) != first.get(key)]
        if differs:
            raise UsageError(
                f"{source} is not a shard of the same run as {first_source} (differs in: {', '.join(differs)})"
            )
    for source, payload in sources:
        _check_holds_its_share(source, payload)
    _check_plans_complete(sources)
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
    merged = {key: first[key] for key in RUN_SETTINGS if key in first}  # a setting a source lacks stays unsaid
    merged.update(
        backends=backends,
        cells=rows,
        plan=[{"file": file, "backend": backend, "shard": 1} for file, backend in cells],
        jobs=max(payload.get("jobs") or 1 for _, payload in sources),
        shard=None,
        merged_from=[source for source, _ in sources],
    )
    return merged


def _share(payload: dict) -> tuple[int, int]:
    shard = payload.get("shard")
    return (shard["index"], shard["count"]) if shard else (1, 1)


def _check_holds_its_share(source: str, payload: dict) -> None:
    """A source's plan covers its files under its backends, once each; its runs are exactly its share of it."""
    if payload.get("plan") is None:
        raise UsageError(f"{source}: records no plan of the course's runs (an older verify made it): run it again")
    index, count = _share(payload)
    planned = [(entry["file"], entry["backend"]) for entry in payload["plan"]]
    course = {(file, backend) for file in payload["files"] for backend in payload["backends"]}
    if len(set(planned)) != len(planned) or set(planned) != course:
        raise UsageError(f"{source}: its plan does not hold each of its files under each of its backends once")
    if any(entry["shard"] > count for entry in payload["plan"]):
        raise UsageError(f"{source}: its plan names a shard beyond its {count} shares")
    share = {(entry["file"], entry["backend"]) for entry in payload["plan"] if entry["shard"] == index}
    ran = [(cell["file"], cell["backend"]) for cell in payload["cells"]]
    repeated = sorted({run for run in ran if ran.count(run) > 1})
    if repeated:
        raise UsageError(f"{source}: {repeated[0][0]} under {repeated[0][1]} is there twice")
    for file, backend in sorted(share - set(ran)):
        raise UsageError(f"{source}: {file} under {backend} is its share ({index}/{count}) but it holds no run of it")
    for file, backend in sorted(set(ran) - share):
        raise UsageError(
            f"{source}: holds a run of {file} under {backend}, which its plan does not give to its share "
            f"({index}/{count})"
        )


def _check_plans_complete(sources: list[tuple[str, dict]]) -> None:
    """Sources that share a run share one plan, and every share of every plan is there, once."""
    plans: dict[tuple, dict[int, str]] = {}
    owner: dict[tuple[str, str], tuple] = {}
    for source, payload in sources:
        index, count = _share(payload)
        key = (count, tuple(sorted((e["file"], e["backend"], e["shard"]) for e in payload["plan"])))
        for file, backend, _ in key[1]:
            if owner.setdefault((file, backend), key) != key:
                raise UsageError(
                    f"{source} was planned differently from the shards it shares runs with ({file} under {backend}): "
                    "run every shard with the same files, backends, --durations-from and N of --shard K/N"
                )
        given = plans.setdefault(key, {})
        if index in given:
            raise UsageError(f"shard {index}/{count} is given twice: {given[index]}, {source}")
        given[index] = source
    for (count, entries), given in plans.items():
        owning = sorted({shard for _, _, shard in entries})  # a share that the plan gave no run hides none
        missing = [f"{index}/{count}" for index in owning if index not in given]
        if missing:
            from multibackend.backends import NAMES

            planned = {backend for _, backend, _ in entries}
            backends = ",".join(name for name in NAMES if name in planned)
            raise UsageError(
                f"shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} of the run under "
                f"{backends} missing: a merge of part of a course would pass what never ran"
            )
