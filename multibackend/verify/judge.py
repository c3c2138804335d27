"""Judging one (file, backend) run from what its process left: the backend that ran, the cell that failed, the
outputs that differ from the stored ones. A run that used another backend is never "passed"."""

from __future__ import annotations

from pathlib import Path

from multibackend.runtime.devices import device_kind
from multibackend.runtime.errors import UsageError, last_line
from multibackend.verify import cells as cell_plans
from multibackend.verify import outputs
from multibackend.verify.files import stored_notebook
from multibackend.verify.launch import ChildOutcome, launch
from multibackend.verify.model import ChildReport, Run, VerifyOptions

OFFLINE_HINT = (
    " (hint: no network; add --offline-datasets on to serve keras.datasets.mnist from the verified local copy)"
)


def run_file(path: Path, backend: str, options: VerifyOptions | None = None) -> Run:
    """Runs one file under one backend in a fresh process and working folder; tells what ran and how it went.

    A run that did not pass shows no result line: what it printed last is its error, not its result.
    """
    options = options or VerifyOptions()
    try:
        run = judge(path, backend, options, launch(path, backend, options))
    except UsageError as error:  # the file changed under the run (deleted, rewritten): this run's failure alone
        run = Run(str(path), backend, "failed", 0.0, f"could not be read when its run started: {error}")
    if run.status not in ("passed", "output differs"):
        run.last_line = ""
    return run


def judge(path: Path, backend: str, options: VerifyOptions, outcome: ChildOutcome) -> Run:
    """The `Run` of `path` under `backend` from what its process left (`outcome`)."""
    stored = stored_notebook(path) if options.check.mode != "off" else None
    finished, progress, new = outcome.finished, outcome.progress, outcome.executed
    report = outcome.report or ChildReport("notebook" if path.suffix == ".ipynb" else "script")
    run = Run(str(path), backend, "passed", finished.seconds, **report.run_fields())
    run.last_line = _result_line(new, finished.stdout, run.trained)
    if finished.timed_out:
        run.failed_cell = int(progress) if progress.isdigit() else (1 if path.suffix == ".py" else None)
        place = f" (in cell {run.failed_cell})" if path.suffix == ".ipynb" and run.failed_cell else ""
        run.status, run.error = "timed out", f"no result after {options.timeout:g} s{place}"
        return run
    if _ran_elsewhere(run, options, report.device_asked):
        return run
    if finished.returncode != 0:
        run.status = "failed"
        run.error = report.error or outcome.failure or last_line(finished.stderr, "failed with no error output")
        if not options.offline and ("mnist.npz" in finished.stderr or "URL fetch failure" in finished.stderr):
            run.error += OFFLINE_HINT
        if path.suffix == ".ipynb" and run.failed_cell:
            run.error = f"cell {run.failed_cell}: {run.error}"
        run.error += _more_failing_cells(run.failed_cells) + _failed_shell_command(
            report.shell_failures, run.failed_cell
        )
        return run
    if not report.sandbox:
        run.status = "failed"
        run.error = "verify could not read which backend ran (its sandbox did not report from the run's process)"
        return run
    if stored is not None and new is not None:
        skip = _not_compared(stored, backend, options, report)
        mismatches = outputs.compare_notebooks(
            stored, new, mode=options.check.mode, rtol=options.check.rtol, atol=options.check.atol, skip=skip
        )
        if mismatches:
            run.differences = [mismatch.summary() for mismatch in mismatches]
            run.status, run.error = "output differs", run.differences[0]
    return run


def _ran_elsewhere(run: Run, options: VerifyOptions, device_asked: str) -> bool:
    """Sets `run`'s status when it ran on another backend (wrong backend, or pinned) or on the CPU when it asked for
    the GPU (wrong device); whether it did."""
    if run.backend_used and run.backend_used != run.backend:
        pinned = options.respect_pins and any(pin["value"] == run.backend_used for pin in run.pins)
        run.status = "pinned" if pinned else "wrong backend"
        run.error = (
            f"{'pinned to' if pinned else 'ran'} {run.backend_used}"
            + (f" ({where(run.pins[-1])})" if run.pins else "")
            + f", not {run.backend}"
        )
        return True
    if device_asked == "gpu" and run.device_used and device_kind(run.device_used) != "gpu":
        run.status, run.error = "wrong device", f"asked for the GPU, ran on {run.device_used}"
        return True
    return False


def _failed_shell_command(failures: list[dict], failed_cell: int | None) -> str:
    """The first shell command that failed before the failing cell (a `!wget` whose file a later cell lacks)."""
    before = [
        failure
        for failure in failures
        if failure.get("cell") and (failed_cell is None or failure["cell"] <= failed_cell)
    ]
    if not before:
        return ""
    first = before[0]
    return f" (after a failed shell command in cell {first['cell']}: !{first['command']} exited {first['exit']})"


def _more_failing_cells(failed_cells: list[dict]) -> str:
    """With --keep-going: how many more cells failed after the first, and how many only after an earlier error."""
    if len(failed_cells) < 2:
        return ""
    after = sum(failed.get("after_earlier_error", False) for failed in failed_cells)
    return f" (and {len(failed_cells) - 1} more failing cells" + (
        f", {after} only after an earlier error)" if after else ")"
    )


def _not_compared(stored: dict, backend: str, options: VerifyOptions, report: ChildReport) -> set[int]:
    """Cells whose stored outputs are not compared: gated, skipped, and in a smoke run all from the first that
    trained (or loaded a sampled dataset): their outputs reflect a capped training or a slice of the data."""
    skip = cell_plans.plan(stored, backend, options.shell).not_compared
    if options.smoke:
        diverged = [*report.trained, *(report.datasets_loaded if options.smoke_sample else [])]
        if diverged:
            skip |= set(range(min(diverged), len(stored.get("cells", [])) + 1))
    return skip


def _result_line(new: dict | None, stdout: str, trained: list[int]) -> str:
    """The line a reader looks for: the last printed line with a number from a cell that trained or evaluated."""
    if not trained:
        return ""
    if new is None:  # a script is one cell
        return outputs.result_line(outputs.normalize(stdout))
    return outputs.last_printed_line(new, only=set(trained))


def where(pin: dict) -> str:
    """Where a KERAS_BACKEND assignment is: its cell, its line, or at run time."""
    return f"cell {pin['cell']}" if pin.get("cell") else f"line {pin['line']}" if pin.get("line") else "at run time"
