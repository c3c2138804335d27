"""`multibackend compare`: run every example on every backend with Keras `fit` (reusing results), then report.

With `--loop`, MNIST also runs with the framework loop, the labelled fast
path, so that the report can show what Keras `fit` costs on each backend. Each
run is a fresh process; its outcome is told apart: passed, a gate failed, or
crashed / timed out (with its last error line), and a crashed run's stale
results file is left on disk but not shown as if it were new.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

from multibackend.course.networks import DEFAULT_SEED, EXAMPLES
from multibackend.results import read_results, results_path
from multibackend.runtime.backend import BACKENDS, installed_backends
from multibackend.runtime.children import ChildResult, run_child
from multibackend.runtime.errors import ResultsError, UsageError, last_line

# A 20-epoch MNIST fit on 2 busy CPU cores takes about a minute; this bounds a hung child.
RUN_TIMEOUT_SECONDS = 1800


@dataclass(frozen=True)
class Outcome:
    """What became of one planned run.

    Attributes:
        example, backend, device, trainer: Which run.
        status: `reused`, `passed`, `gate failed`, `crashed` or `timed out`.
        path: Its results file.
        reason: For a crash or timeout, the child's last error line.
    """

    example: str
    backend: str
    device: str
    trainer: str
    status: str
    path: Path
    reason: str = ""

    @property
    def finished(self) -> bool:
        """Whether its results file is this run's (or a matching reused one)."""
        return self.status in ("reused", "passed", "gate failed")


def reusable(path: Path, example: str, epochs: int, batch_size: int, seed: int, trainer: str = "fit") -> bool:
    """Whether an existing results file was made with the requested settings and trainer."""
    try:
        payload = read_results(path, example=example)
    except ResultsError:
        return False
    made_with = (payload["epochs"], payload["batch_size"], payload["seed"], payload.get("trainer", "fit"))
    return made_with == (epochs, batch_size, seed, trainer)


def planned_runs(examples: list[str], with_loop: bool) -> list[tuple[str, str]]:
    """`(example, trainer)` pairs: every example with `fit`, plus MNIST with the loop when asked."""
    runs = [(example, "fit") for example in examples]
    if with_loop and "mnist" in examples:
        runs.append(("mnist", "loop"))
    return runs


def run_missing(
    examples: list[str],
    backends: list[str] | None,
    *,
    device: str,
    results_dir: Path,
    epochs: dict[str, int],
    with_loop: bool = False,
    rerun: bool,
    progress=print,
) -> list[Outcome]:
    """Runs `multibackend run` in a fresh process for each result that is missing or stale.

    Returns:
        One `Outcome` per planned run, in order.
    """
    available = installed_backends()
    chosen = backends or [name for name in BACKENDS if name in available]
    missing = [name for name in chosen if name not in available]
    if missing:
        raise UsageError(f"backend {missing[0]!r} is not installed here (installed: {', '.join(available) or 'none'})")
    outcomes = []
    for example, trainer in planned_runs(examples, with_loop):
        batch_size = EXAMPLES[example].batch_size
        for backend in chosen:
            path = results_path(results_dir, example, backend, device, trainer)
            if not rerun and reusable(path, example, epochs[example], batch_size, DEFAULT_SEED, trainer):
                progress(f"reusing {path}")
                outcomes.append(Outcome(example, backend, device, trainer, "reused", path))
                continue
            progress(f"running {example} on {backend} ({device}, {epochs[example]} epochs, {trainer}) ...")
            outcome = _run_one(example, backend, device, trainer, epochs[example], results_dir, path)
            if outcome.status != "passed":
                progress(f"  {example} on {backend} ({trainer}): {outcome.status}"
                         + (f": {outcome.reason}" if outcome.reason else " (kept in the report)"))  # fmt: skip
            outcomes.append(outcome)
    return outcomes


def _run_one(example: str, backend: str, device: str, trainer: str, epochs: int, results_dir: Path,
             path: Path) -> Outcome:  # fmt: skip
    before = path.stat().st_mtime_ns if path.exists() else None
    command = [sys.executable, "-m", "multibackend", "run", example, "--backend", backend, "--device", device,
               "--epochs", str(epochs), "--trainer", trainer, "--out", str(results_dir), "--verbose", "0"]  # fmt: skip
    finished = run_child(command, timeout=RUN_TIMEOUT_SECONDS)
    return classify(Outcome(example, backend, device, trainer, "", path), finished, before)


def classify(planned: Outcome, finished: ChildResult, modified_before: int | None) -> Outcome:
    """What a finished `multibackend run` child did: passed, failed a gate, crashed or timed out.

    A failed gate is exit status 1 with a new, valid results file that says so;
    anything else that did not pass (a traceback also exits 1) is a crash.

    Args:
        planned: The run, with any status.
        finished: How its process ended.
        modified_before: Its results file's `st_mtime_ns` before the run (None: there was none).

    Returns:
        The run with its status, and for a crash or timeout the child's last error line.
    """
    if finished.timed_out:
        return replace(planned, status="timed out", reason=f"no result after {finished.seconds:.0f} s")
    path = planned.path
    payload = None
    if path.exists() and path.stat().st_mtime_ns != modified_before:
        try:
            payload = read_results(path, example=planned.example)
        except ResultsError:
            payload = None
    if payload is not None and finished.returncode == 0 and payload["passed"]:
        return replace(planned, status="passed")
    if payload is not None and finished.returncode == 1 and not payload["passed"]:
        return replace(planned, status="gate failed")
    reason = last_line(finished.stderr, "no error output")
    return replace(planned, status="crashed", reason=f"exit {finished.returncode}: {reason}")
