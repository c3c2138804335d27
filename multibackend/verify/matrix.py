"""`multibackend verify` and `verify merge`: every file under every backend, side by side; findings per file; the
results written as one set.

Each (file, backend) run goes through `judge.run_file` (a fresh process, see `launch`); `jobs` of them run side by
side. A shard runs its share of the course's plan (`shards`); a merge joins shards into the matrix one machine would
have made. Each file then gets one verdict across backends (`verdicts`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

from multibackend.results import strict_json
from multibackend.runtime.backend import BACKENDS, INSTALL_HINTS, installed_backends
from multibackend.runtime.children import end_all_children
from multibackend.runtime.errors import UsageError
from multibackend.runtime.outputs import check_output_files, write_together
from multibackend.verify import comparison, containment, junit, shards, verdicts
from multibackend.verify.files import (
    collect_files,
    framework_backend,
    missing_package_warning,
    portability_warnings,
    source_of,
)
from multibackend.verify.judge import run_file, where
from multibackend.verify.model import NOT_FAILURES, Run, VerifyOptions, VerifyReport
from multibackend.verify.regressions import Tracking, check_comparable, find_regressions
from multibackend.verify.render import html_matrix, markdown_matrix
from multibackend.verify.shards import Shard
from multibackend.verify.state import RunState


def verify(
    paths: list[str],
    backends: list[str] | None = None,
    options: VerifyOptions | None = None,
    *,
    out_dir: str = "results",
    junit_xml: str | None = None,
    progress=print,
    shard: Shard | None = None,
    durations: dict[tuple[str, str], float] | None = None,
    state: RunState | None = None,
    tracking: Tracking | None = None,
    csv_path: str | None = None,
) -> dict:
    """Runs every file under every backend; writes `verify.json`, `verify.md` and `verify.html` to `out_dir`.

    Args:
        paths: Scripts, notebooks and folders holding them.
        backends: The backends to run under (default: all three).
        options: How each file runs (`VerifyOptions`).
        out_dir: The folder for the results.
        junit_xml: Where to write a JUnit XML file (one test case per file and backend), if anywhere.
        progress: Called with a line of text as each cell ends.
        shard: Run only this share of the (file, backend) runs (see `shards`); verdicts wait for the merge.
        durations: Seconds per (file, backend) from an earlier run, to balance the shares.
        state: The passed runs of earlier invocations (`--state`): those whose inputs are unchanged are not run.
        tracking: The earlier commit's measurements to compare with (`--baseline`), if any.
        csv_path: Where to write every measured call as CSV, if anywhere.

    Returns:
        The payload: cells, verdicts, warnings and `passed`.
    """
    options = dataclasses.replace(options or VerifyOptions(), kept_dir=str(Path(out_dir) / KEPT_FOLDER))
    outputs = (Path(out_dir), junit_xml, csv_path)
    files, chosen, available, warnings = _checked_inputs(paths, backends, options, outputs, tracking, progress)
    contained = containment.available()  # probed here, once: the runs' threads would each probe at their first run
    runs, plan = planned_runs(files, chosen, shard, durations, progress)
    run = lambda path, backend: run_file(path, backend, options)  # noqa: E731
    done = run_matrix(runs, available, jobs=options.jobs, progress=progress, run=state.reusing(run) if state else run)
    rows = [asdict(run) for run in done]
    # A shard sees part of each file's runs: its verdicts would be about that part.
    found = file_findings(files, rows, chosen, options, progress) if shard is None else {}
    payload = VerifyReport(
        **options.recorded(),
        backends=chosen,
        files=[str(path) for path in files],
        cells=rows,
        verdicts=found.get("verdicts", {}),
        verdict_details=found.get("details", {}),
        warnings=warnings + found.get("warnings", []),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        shard={"index": shard.index, "count": shard.count} if shard else None,
        plan=plan,
        contained=contained,
        **tracked({**options.recorded(), "cells": rows}, all(run.status in NOT_FAILURES for run in done), tracking),
    ).to_json()
    write_outputs(payload, *outputs)
    if state is not None:
        state.save()
    return payload


def planned_runs(
    files: list[Path], chosen: list[str], shard: Shard | None, durations: dict | None, progress=print
) -> tuple[list[tuple[Path, str]], list[dict]]:
    """The (file, backend) runs this invocation makes (a shard's share, or all) and the whole course's plan."""
    runs = [(path, backend) for path in files for backend in chosen]
    plan = shards.plan([(str(path), backend) for path, backend in runs], shard.count if shard else 1, durations)
    if shard is not None:
        mine = {(entry["file"], entry["backend"]) for entry in plan if entry["shard"] == shard.index}
        runs = [(path, backend) for path, backend in runs if (str(path), backend) in mine]
        progress(f"shard {shard}: {len(runs)} of {len(files) * len(chosen)} runs")
    return runs, plan


def _checked_inputs(
    paths: list[str],
    backends: list[str] | None,
    options: VerifyOptions,
    outputs: tuple[Path, str | None, str | None],
    tracking: Tracking | None,
    progress,
) -> tuple[list[Path], list[str], set[str], list[str]]:
    """Everything that is bad input, refused before anything runs: options, files, outputs, data, backends.

    Returns:
        The files, the backends chosen, those installed, and the files' portability warnings (printed).
    """
    if options.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if options.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    files = collect_files(paths)
    out, junit_xml, csv_path = outputs
    check_outputs(out, junit_xml, inputs=files, csv_path=csv_path)
    if tracking is not None:
        check_comparable(options.recorded(), tracking)
    for path in files:
        source_of(path)  # an unreadable script or notebook is bad input: one line, before anything runs
    chosen = list(backends or BACKENDS)
    warnings = [warning for path in files for warning in [*missing_package_warning(path), *portability_warnings(path)]]
    for warning in warnings:
        progress(f"warning: {warning}")
    if options.offline:
        from multibackend.course.data import find_mnist

        find_mnist()  # a bad MULTIBACKEND_DATA_DIR is bad input: one line, before anything runs
    available = set(installed_backends())
    if not available & set(chosen):
        raise UsageError(f"none of the backends {', '.join(chosen)} is installed here: nothing would be verified")
    return files, chosen, available, warnings


def merge_runs(
    folders: list[str],
    *,
    out_dir: str = "results",
    junit_xml: str | None = None,
    progress=print,
    tracking: Tracking | None = None,
    csv_path: str | None = None,
) -> dict:
    """Joins the `verify.json` of shards run on many machines into one matrix, written as `verify` writes one.

    Args:
        folders: Folders holding a `verify.json` (or the files themselves), one per shard or machine.
        out_dir: The folder for the merged `verify.json`, `verify.md` and `verify.html`.
        junit_xml: Where to write a JUnit XML file of the merged matrix, if anywhere.
        progress: Called with lines of text (warnings).
        tracking: The earlier commit's measurements to compare the merged course with (`--baseline`), if any.
        csv_path: Where to write every measured call as CSV, if anywhere.

    Returns:
        The merged payload; its verdicts are the whole course's.

    Raises:
        UsageError: for an unreadable file, shards of different runs, a run given twice or a shard missing.
    """
    given = [Path(folder) / "verify.json" if Path(folder).is_dir() else Path(folder) for folder in folders]
    check_outputs(Path(out_dir), junit_xml, inputs=given, csv_path=csv_path)
    sources = [(folder, shards.read_verify_file(Path(folder), "verify merge:")) for folder in folders]
    merged = shards.merge(sources)
    # A run's optional fields (pins, gated cells, ...) as a run without them has them: an older or hand-made shard.
    merged["cells"] = [{**asdict(Run("", "", "", 0.0)), **cell} for cell in merged["cells"]]
    files = [Path(file) for file in merged["files"]]
    options = VerifyOptions(respect_pins=bool(merged.get("respect_backend_pins")))
    found = file_findings(files, merged["cells"], merged["backends"], options, progress)
    earlier = [warning for _, payload in sources for warning in payload["warnings"]]
    merged = VerifyReport.from_json(
        {
            **merged,
            "verdicts": found["verdicts"],
            "verdict_details": found["details"],
            "warnings": list(dict.fromkeys(earlier + found["warnings"])),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **tracked(merged, all(cell["status"] in NOT_FAILURES for cell in merged["cells"]), tracking),
        }
    ).to_json()
    write_outputs(merged, Path(out_dir), junit_xml, csv_path)
    return merged


def tracked(payload: dict, passed: bool, tracking: Tracking | None) -> dict:
    """`passed`, and with a baseline the `baseline` and `regressions` fields (which fail the course with `fail`)."""
    if tracking is None:
        return {"passed": passed}
    check_comparable(payload, tracking)
    found = find_regressions(payload, tracking)
    return {
        "passed": passed and not (tracking.fail and found),
        "baseline": {
            "source": tracking.source,
            "max_slowdown": tracking.max_slowdown,
            "fail_on_regression": tracking.fail,
        },
        "regressions": found,
    }


OUTPUT_NAMES = ("verify.json", "verify.md", "verify.html")
KEPT_FOLDER = "executed"  # in --out: executed notebooks and output tails (--keep-executed; after a timeout)


def check_outputs(out: Path, junit_xml: str | None, inputs: list[Path], csv_path: str | None = None) -> None:
    """Refuses, before any work, outputs that could not be written or would overwrite an input or each other."""
    paths = [out / name for name in OUTPUT_NAMES] + [Path(path) for path in (junit_xml, csv_path) if path]
    check_output_files(paths, inputs, role="verify: output")


def write_outputs(payload: dict, out: Path, junit_xml: str | None, csv_path: str | None = None) -> None:
    """Writes `verify.json`, `verify.md`, `verify.html` to `out`, and the JUnit XML and CSV files when asked, as one
    set."""
    files = {
        out / "verify.json": json.dumps(strict_json(payload), indent=2, allow_nan=False) + "\n",
        out / "verify.md": markdown_matrix(payload) + "\n",
        out / "verify.html": html_matrix(payload),
    }
    if junit_xml:
        files[Path(junit_xml)] = junit.to_bytes(payload)
    if csv_path:
        files[Path(csv_path)] = comparison.csv_text(payload)
    write_together(files)


def file_findings(files: list[Path], rows: list[dict], chosen: list[str], options: VerifyOptions, progress) -> dict:
    """Per file: its verdict with the line that explains it, and warnings (KERAS_BACKEND assignments, cells run
    nowhere), each warning also told to `progress`."""
    result: dict = {"verdicts": {}, "details": {}, "warnings": []}
    for path in files:
        own = [row for row in rows if row["file"] == str(path)]
        try:
            imported = framework_backend(path)
        except UsageError:  # a merge on a machine without the course's files: judged by the runs alone
            imported = ""
        verdict = verdicts.file_verdict(own, imported)
        result["verdicts"][str(path)], result["details"][str(path)] = verdict.kind, verdict.detail
        pins = {(pin["value"], where(pin)) for row in own for pin in row["pins"]}
        for value, place in sorted(pins):
            consequence = (
                "runs on it whatever is asked (--respect-backend-pins)"
                if options.respect_pins
                else "each backend ran as asked (--respect-backend-pins runs it as written)"
            )
            result["warnings"].append(f"{path}: sets KERAS_BACKEND={value} ({place}); {consequence}")
        result["warnings"] += verdicts.cells_run_nowhere(str(path), own, chosen)
    for warning in result["warnings"]:
        progress(f"warning: {warning}")
    return result


def run_matrix(wanted: list[tuple[Path, str]], available: set[str], *, jobs: int, progress, run) -> list[Run]:
    """Runs `run(path, backend)` for every (file, backend) pair, `jobs` at a time; returns the cells in that order.

    An interruption (Ctrl-C, SIGTERM) ends every running child before it goes on up.
    """
    cells: dict[tuple[Path, str], Run] = {}
    for path, backend in wanted:
        if backend not in available:  # not a failure of the script: it was not run
            cells[path, backend] = Run(str(path), backend, "not installed", 0.0, INSTALL_HINTS[backend])
            _report(progress, cells[path, backend])
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool:
        futures = {
            pool.submit(run, path, backend): (path, backend) for path, backend in wanted if (path, backend) not in cells
        }
        try:
            for future in as_completed(futures):
                cells[futures[future]] = future.result()
                _report(progress, cells[futures[future]])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            end_all_children()
            raise
    return [cells[key] for key in wanted]


def _report(progress, cell: Run) -> None:
    used = f" [ran {cell.backend_used}]" if cell.backend_used and cell.backend_used != cell.backend else ""
    used += f" [unchanged since {cell.unchanged_since}: not run]" if cell.unchanged_since else ""
    progress(
        f"{cell.status:>14}  {cell.seconds:6.1f} s  {cell.backend:<10} {cell.file}{used}"
        + (f"  {cell.error}" if cell.error else "")
    )
