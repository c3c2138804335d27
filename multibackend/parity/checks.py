"""`multibackend parity`: prove that the backends compute the same network.

Each participant (a backend on a device) runs `parity.worker`'s functions as jobs
in its own process (`runtime.jobs`); they exchange arrays through `.npz` files in a work folder, and the
comparison here needs only NumPy.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from multibackend.course.networks import MNIST
from multibackend.parity.worker import ParityWork
from multibackend.results import ParityResult, write_json_atomic
from multibackend.runtime.backend import BACKENDS, chosen_backends
from multibackend.runtime.errors import UsageError
from multibackend.runtime.jobs import JobRequest, run_job

TOLERANCES = {
    "forward_xor": 1e-6,
    "forward_mnist": 1e-6,
    "one_update_xor": 1e-6,
    "one_update_mnist": 1e-6,
    "xor_trajectory_weights": 1e-4,
    "xor_trajectory_accuracy": 0.0,
    "mnist_epoch_loss_relative": 1e-3,
    "mnist_argmax_disagreement": 0.01,
    "saved_model_predictions": 1e-5,
    # evaluate's accuracy is a float32 running mean whose last bit depends on the
    # reduction order (a GPU gave 5.96e-8 for the same 10,000 answers): half a
    # test digit still means the same number of digits right.
    "saved_model_accuracy": 0.5 / 10_000,
    # The framework loop (the fast path) against Keras fit on the same backend, same weights and sample order.
    "loop_vs_fit_one_update_mnist": 1e-6,
    "loop_vs_fit_epoch_loss_relative": 1e-3,
    "loop_vs_fit_argmax_disagreement": 0.01,
}


@dataclass(frozen=True)
class Comparison:
    """One row of a parity table."""

    check: str
    pair: str
    difference: float
    tolerance: float
    passed: bool


def compare_pair(check: str, pair: str, difference: float) -> Comparison:
    tolerance = TOLERANCES[check]
    return Comparison(check, pair, float(difference), tolerance, bool(difference <= tolerance))


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def compare_outputs(outputs: dict[str, dict[str, np.ndarray]]) -> list[Comparison]:
    """Compares every pair of participants' worker outputs.

    Args:
        outputs: participant tag (e.g. `torch-cpu`) -> arrays its worker wrote.

    Returns:
        One `Comparison` per check and pair.
    """
    rows = []
    for (a, left), (b, right) in itertools.combinations(sorted(outputs.items()), 2):
        pair = f"{a} vs {b}"
        for check in ("forward_xor", "forward_mnist", "one_update_xor", "one_update_mnist", "xor_trajectory_weights"):
            rows.append(compare_pair(check, pair, max_abs(left[check], right[check])))
        rows.append(
            compare_pair(
                "xor_trajectory_accuracy",
                pair,
                max_abs(left["xor_trajectory_accuracy"], right["xor_trajectory_accuracy"]),
            )
        )
        relative = relative_difference(left["mnist_epoch_loss"], right["mnist_epoch_loss"])
        rows.append(compare_pair("mnist_epoch_loss_relative", pair, relative))
        disagreement = float(np.mean(left["mnist_test_argmax"] != right["mnist_test_argmax"]))
        rows.append(compare_pair("mnist_argmax_disagreement", pair, disagreement))
    return rows


def relative_difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest `|a - b| / |a|` over the elements (a is the reference)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))


def compare_loop_with_fit(outputs: dict[str, dict[str, np.ndarray]]) -> list[Comparison]:
    """Compares each participant's framework loop with its own Keras `fit`: one update, the epoch loss, predictions.

    Args:
        outputs: participant tag -> arrays its worker wrote (fit's and the loop's).

    Returns:
        Three `Comparison`s per participant, pair `<tag>: loop vs fit`.
    """
    rows = []
    for tag, arrays in sorted(outputs.items()):
        pair = f"{tag}: loop vs fit"
        rows.append(
            compare_pair(
                "loop_vs_fit_one_update_mnist",
                pair,
                max_abs(arrays["one_update_mnist"], arrays["loop_one_update_mnist"]),
            )
        )
        rows.append(
            compare_pair(
                "loop_vs_fit_epoch_loss_relative",
                pair,
                relative_difference(arrays["mnist_epoch_loss"], arrays["loop_mnist_epoch_loss"]),
            )
        )
        disagreement = float(np.mean(arrays["mnist_test_argmax"] != arrays["loop_mnist_test_argmax"]))
        rows.append(compare_pair("loop_vs_fit_argmax_disagreement", pair, disagreement))
    return rows


def compare_saved_models(outputs: dict[str, dict], loaded: dict[str, dict]) -> list[Comparison]:
    """Compares each saved model's predictions under its own and every other participant."""
    rows = []
    for saver, loader in itertools.permutations(sorted(outputs), 2):
        pair = f"saved by {saver}, loaded by {loader}"
        theirs = loaded[loader]
        rows.append(
            compare_pair(
                "saved_model_predictions",
                pair,
                max_abs(outputs[saver]["saved_predictions"], theirs[f"{saver}/predictions"]),
            )
        )
        rows.append(
            compare_pair(
                "saved_model_accuracy",
                pair,
                abs(float(outputs[saver]["saved_accuracy"]) - float(theirs[f"{saver}/accuracy"])),
            )
        )
    return rows


def exercise_rows(outputs: dict[str, dict]) -> list[Comparison]:
    rows = []
    for tag, arrays in sorted(outputs.items()):
        for name, passed in zip(arrays["exercise_names"].tolist(), arrays["exercise_passed"].tolist()):
            rows.append(Comparison(f"course_exercise:{name}", tag, 0.0 if passed else 1.0, 0.0, bool(passed)))
    return rows


def _run_worker(phase: str, work: ParityWork, timeout: float) -> None:
    # A .keras file names its optimizer by the saving backend's module (keras.src.backend.torch.optimizers...):
    # loading a torch-saved model under TensorFlow imports torch, and fails where torch is not installed.
    hide = phase != "load_others"
    request = JobRequest(
        work.backend, f"multibackend.parity.worker:{phase}", work, device=work.device, hide_other_frameworks=hide
    )
    run_job(request, timeout=timeout).result(f"parity worker {work.tag}")


def participants(backends: list[str] | None, device: str) -> list[tuple[str, str]]:
    """The (backend, device) pairs to compare; needs at least two.

    Args:
        backends: Requested backends, or None for every installed one.
        device: `cpu`, `gpu`, or `auto` (CPU, plus GPU where a backend sees one).
    """
    chosen = chosen_backends(backends)  # each once: torch,torch compares nothing
    missing = [] if backends else [name for name in BACKENDS if name not in chosen]
    result: list[tuple[str, str]] = []
    for name in chosen:
        if device in ("cpu", "auto"):
            result.append((name, "cpu"))
        if device in ("gpu", "auto") and _probe_gpu(name):
            result.append((name, "gpu"))
        elif device == "gpu":
            raise UsageError(f"--device gpu: backend {name!r} sees no usable GPU on this machine")
    if len(result) < 2:
        hint = f" (not installed: {', '.join(missing)})" if missing else ""
        raise UsageError(f"parity needs at least two distinct backends or devices, found {len(result)}{hint}")
    return result


def _probe_gpu(backend: str) -> bool:
    from multibackend.runtime.devices import nvidia_driver_present

    if not nvidia_driver_present():
        return False
    # Probing imports the framework; do it in a child so this process stays framework-free.
    probe = "multibackend.runtime.devices:this_backend_sees_a_gpu"
    outcome = run_job(JobRequest(backend, probe, device="gpu", import_keras=False), timeout=300)
    return outcome.ok and outcome.value is True


def run_parity(
    backends: list[str] | None = None,
    *,
    device: str = "cpu",
    seeds: int = 10,
    mnist_epochs: int = 1,
    train_samples: int | None = None,
    out_dir: str = "results",
    timeout: float = 1200,
    progress=print,
) -> ParityResult:
    """Runs every participant's worker, compares them and writes `OUT/parity.json`.

    Returns:
        What was written to `OUT/parity.json`: participants, rows and `passed`.
    """
    if seeds < 1 or mnist_epochs < 1:
        raise UsageError("--seeds and --mnist-epochs must be positive integers")
    if train_samples is not None and not 128 <= train_samples <= MNIST.train_samples:
        raise UsageError(
            f"--train-samples must be from 128 (one batch) to {MNIST.train_samples:,}, got {train_samples}"
        )
    members = participants(backends, device)
    tags = [f"{name}-{dev}" for name, dev in members]
    progress(f"parity: {', '.join(tags)}")
    with tempfile.TemporaryDirectory(prefix="multibackend-parity-") as temporary:
        work = Path(temporary)
        for (name, dev), tag in zip(members, tags):
            progress(f"  computing on {tag} ...")
            _run_worker("compute", ParityWork(name, dev, str(work), seeds, mnist_epochs, train_samples), timeout)
        for (name, dev), tag in zip(members, tags):
            progress(f"  loading the other saved models on {tag} ...")
            others = tuple(t for t in tags if t != tag)
            _run_worker("load_others", ParityWork(name, dev, str(work), others=others), timeout)
        outputs = {tag: dict(np.load(work / f"{tag}.npz")) for tag in tags}
        loaded = {tag: dict(np.load(work / f"{tag}-loaded.npz")) for tag in tags}
    rows = (
        compare_outputs(outputs)
        + compare_loop_with_fit(outputs)
        + compare_saved_models(outputs, loaded)
        + exercise_rows(outputs)
    )
    result = ParityResult(
        participants=tags,
        seeds=seeds,
        mnist_epochs=mnist_epochs,
        train_samples=train_samples or MNIST.train_samples,
        mnist_epoch_loss={tag: outputs[tag]["mnist_epoch_loss"].tolist() for tag in tags},
        rows=[asdict(row) for row in rows],
        max_difference=max_by_check(rows),
        failed_checks=sorted({row.check for row in rows if not row.passed}),
        passed=all(row.passed for row in rows),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    write_json_atomic(Path(out_dir) / "parity.json", result.to_json())
    return result


def max_by_check(rows: list[Comparison]) -> dict[str, float]:
    """The largest difference of each check; NaN when any is NaN (max() would drop it and report 0.0)."""
    worst: dict[str, float] = {}
    for row in rows:
        current = worst.get(row.check, 0.0)
        worst[row.check] = (
            math.nan if math.isnan(row.difference) or math.isnan(current) else max(current, row.difference)
        )
    return worst


def format_table(rows: list[dict]) -> str:
    """The parity rows as an aligned text table, grouped by check."""
    check_width = max(len("check"), *(len(row["check"]) for row in rows))
    pair_width = max(len("pair"), *(len(row["pair"]) for row in rows))
    lines = [f"{'check':<{check_width}}  {'pair':<{pair_width}}  {'max diff':>10}  {'tolerance':>10}  result"]
    for row in sorted(rows, key=lambda r: r["check"]):
        lines.append(
            f"{row['check']:<{check_width}}  {row['pair']:<{pair_width}}  {row['difference']:>10.3g}  "
            f"{row['tolerance']:>10.3g}  {'pass' if row['passed'] else 'FAIL'}"
        )
    return "\n".join(lines)
