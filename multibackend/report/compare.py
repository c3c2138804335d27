"""`multibackend compare`: run every example on every backend with Keras `fit` (reusing results), then report.

With `--loop`, MNIST also runs with the framework loop, the labelled fast
path, so that the report can show what Keras `fit` costs on each backend. Each
run is `multibackend run`'s own function as a job in a fresh process of its
backend; its outcome is told apart: passed, a gate failed, or crashed / timed
out (with its one-line error), and a crashed run's stale results file is left
on disk but not shown as if it were new.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from multibackend.course.networks import DEFAULT_SEED, EXAMPLES
from multibackend.results import read_results, results_path
from multibackend.runtime.backend import chosen_backends
from multibackend.runtime.errors import ResultsError
from multibackend.runtime.jobs import JobOutcome, JobRequest, run_job
from multibackend.training.runner import RunConfig

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


def reusable(
    path: Path,
    example: str,
    epochs: int,
    batch_size: int,
    seed: int,
    trainer: str = "fit",
    *,
    backend: str = "",
    device: str = "",
) -> bool:
    """Whether an existing results file holds this very run: its backend and device, settings and trainer.

    A file named `xor-jax-cpu.json` that holds a torch run is not reused: jax would never run.
    """
    try:
        made = read_results(path, example=example)
    except ResultsError:
        return False
    made_with = (made.epochs, made.batch_size, made.seed, made.trainer)
    made_on = (made.backend, made.device)
    return made_with == (epochs, batch_size, seed, trainer) and made_on == (backend or made_on[0], device or made_on[1])


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
    chosen = chosen_backends(backends)
    outcomes = []
    for example, trainer in planned_runs(examples, with_loop):
        batch_size = EXAMPLES[example].batch_size
        for backend in chosen:
            path = results_path(results_dir, example, backend, device, trainer)
            settings = (epochs[example], batch_size, DEFAULT_SEED, trainer)
            if not rerun and reusable(path, example, *settings, backend=backend, device=device):
                progress(f"reusing {path}")
                outcomes.append(Outcome(example, backend, device, trainer, "reused", path))
                continue
            progress(f"running {example} on {backend} ({device}, {epochs[example]} epochs, {trainer}) ...")
            outcome = _run_one(example, backend, device, trainer, epochs[example], results_dir, path)
            if outcome.status != "passed":
                progress(
                    f"  {example} on {backend} ({trainer}): {outcome.status}"
                    + (f": {outcome.reason}" if outcome.reason else " (kept in the report)")
                )
            outcomes.append(outcome)
    return outcomes


def _run_one(
    example: str, backend: str, device: str, trainer: str, epochs: int, results_dir: Path, path: Path
) -> Outcome:
    before = path.stat().st_mtime_ns if path.exists() else None
    config = RunConfig(example, backend, device, epochs, trainer=trainer, out_dir=str(results_dir), verbose=0)
    # import_keras=False: `run` validates its input and fixes the device before Keras is imported, as the command does.
    request = JobRequest(backend, "multibackend.training.runner:run", config, device=device, import_keras=False)
    outcome = run_job(request, timeout=RUN_TIMEOUT_SECONDS)
    return classify(Outcome(example, backend, device, trainer, "", path), outcome, before)


def classify(planned: Outcome, finished: JobOutcome, modified_before: int | None) -> Outcome:
    """What a finished run job did: passed, failed a gate, crashed or timed out.

    A run passed or failed a gate when it returned and left a new, valid results file that says so;
    anything else is a crash.

    Args:
        planned: The run, with any status.
        finished: How its job ended.
        modified_before: Its results file's `st_mtime_ns` before the run (None: there was none).

    Returns:
        The run with its status, and for a crash or timeout the job's one-line error.
    """
    if finished.process.timed_out:
        return replace(planned, status="timed out", reason=f"no result after {finished.process.seconds:.0f} s")
    path = planned.path
    written = None
    if path.exists() and path.stat().st_mtime_ns != modified_before:
        try:
            written = read_results(path, example=planned.example)
        except ResultsError:
            written = None
    if finished.ok and written is not None:
        return replace(planned, status="passed" if written.passed else "gate failed")
    reason = finished.failure() or "it returned, but its results file is missing or not valid"
    return replace(planned, status="crashed", reason=reason)
