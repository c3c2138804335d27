"""`multibackend compare`: run every example on every backend (reusing results) and report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from multibackend.backend import BACKENDS, installed_backends
from multibackend.errors import ResultsError, UsageError, last_line
from multibackend.networks import DEFAULT_SEED, EXAMPLES
from multibackend.results import read_results, results_path
from multibackend.runner import resolve_trainer


def reusable(path: Path, example: str, epochs: int, batch_size: int, seed: int, trainer: str = "fit") -> bool:
    """Whether an existing results file was made with the requested settings (trainer resolved: fit or loop)."""
    try:
        payload = read_results(path, example=example)
    except ResultsError:
        return False
    made_with = (payload["epochs"], payload["batch_size"], payload["seed"], payload.get("trainer", "fit"))
    return made_with == (epochs, batch_size, seed, trainer)


def run_missing(
    examples: list[str],
    backends: list[str] | None,
    *,
    device: str,
    results_dir: Path,
    epochs: dict[str, int],
    trainer: str = "auto",
    rerun: bool,
    progress=print,
) -> None:
    """Runs `multibackend run` in a fresh process for each result that is missing or stale."""
    available = installed_backends()
    chosen = backends or [name for name in BACKENDS if name in available]
    missing = [name for name in chosen if name not in available]
    if missing:
        raise UsageError(f"backend {missing[0]!r} is not installed here (installed: {', '.join(available) or 'none'})")
    for example in examples:
        spec = EXAMPLES[example]
        resolved = resolve_trainer(trainer, example)
        for backend in chosen:
            path = results_path(results_dir, example, backend, device)
            if not rerun and reusable(path, example, epochs[example], spec.batch_size, DEFAULT_SEED, resolved):
                progress(f"reusing {path}")
                continue
            progress(f"running {example} on {backend} ({device}, {epochs[example]} epochs, {resolved}) ...")
            command = [sys.executable, "-m", "multibackend", "run", example, "--backend", backend, "--device", device,
                       "--epochs", str(epochs[example]), "--trainer", resolved, "--out", str(results_dir),
                       "--verbose", "0"]  # fmt: skip
            finished = subprocess.run(command, capture_output=True, text=True)
            if finished.returncode not in (0, 1):
                raise UsageError(f"{example} on {backend} failed: {last_line(finished.stderr, 'no output')}")
            if finished.returncode == 1:
                progress(f"  {example} on {backend}: a gate failed (kept in the report)")
