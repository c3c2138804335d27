"""`multibackend parity`: prove that the backends compute the same network.

Each participant (a backend on a device) runs `parity.worker` in its own
process; they exchange arrays through `.npz` files in a work folder, and the
comparison here needs only NumPy.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from multibackend.results import write_json_atomic
from multibackend.runtime.backend import BACKENDS, installed_backends
from multibackend.runtime.children import run_child
from multibackend.runtime.errors import ChildCrashed, UsageError, last_line

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
        rows.append(compare_pair("loop_vs_fit_one_update_mnist", pair,
                                 max_abs(arrays["one_update_mnist"], arrays["loop_one_update_mnist"])))  # fmt: skip
        rows.append(compare_pair("loop_vs_fit_epoch_loss_relative", pair,
                                 relative_difference(arrays["mnist_epoch_loss"], arrays["loop_mnist_epoch_loss"])))  # fmt: skip
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


def _run_worker(args: list[str], tag: str, timeout: float) -> None:
    finished = run_child([sys.executable, "-m", "multibackend.parity.worker", *args], timeout=timeout)
    if finished.timed_out:
        raise ChildCrashed(f"parity worker {tag} timed out after {timeout:.0f} s")
    if finished.returncode != 0:
        reason = last_line(finished.stderr, f"exit {finished.returncode}")
        raise ChildCrashed(f"parity worker {tag} crashed: {reason}")


def participants(backends: list[str] | None, device: str) -> list[tuple[str, str]]:
    """The (backend, device) pairs to compare; needs at least two.

    Args:
        backends: Requested backends, or None for every installed one.
        device: `cpu`, `gpu`, or `auto` (CPU, plus GPU where a backend sees one).
    """
    available = installed_backends()
    requested = list(dict.fromkeys(backends)) if backends else list(BACKENDS)  # torch,torch compares nothing
    unknown = [name for name in requested if name not in BACKENDS]
    if unknown:
        raise UsageError(f"unknown backend {unknown[0]!r} (choose from {', '.join(BACKENDS)})")
    missing = [name for name in requested if name not in available]
    chosen = [name for name in requested if name in available]
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
    code = f"from multibackend.runtime.devices import gpu_available; print(gpu_available({backend!r}))"
    finished = run_child([sys.executable, "-c", code], timeout=300)
    return not finished.timed_out and finished.stdout.strip().endswith("True")


def run_parity(
    backends: list[str] | None = None,
    *,
    device: str = "cpu",
    seeds: int = 10,
    mnist_epochs: int = 1,
    out_dir: str = "results",
    timeout: float = 1200,
    progress=print,
) -> dict:
    """Runs every participant's worker, compares them and writes `OUT/parity.json`.

    Returns:
        The payload written: participants, rows and `passed`.
    """
    if seeds < 1 or mnist_epochs < 1:
        raise UsageError("--seeds and --mnist-epochs must be positive integers")
    members = participants(backends, device)
    tags = [f"{name}-{dev}" for name, dev in members]
    progress(f"parity: {', '.join(tags)}")
    with tempfile.TemporaryDirectory(prefix="multibackend-parity-") as temporary:
        work = Path(temporary)
        for (name, dev), tag in zip(members, tags):
            progress(f"  computing on {tag} ...")
            _run_worker(
                ["compute", "--backend", name, "--device", dev, "--work", str(work), "--seeds", str(seeds),
                 "--mnist-epochs", str(mnist_epochs)], tag, timeout,
            )  # fmt: skip
        for (name, dev), tag in zip(members, tags):
            progress(f"  loading the other saved models on {tag} ...")
            others = ",".join(t for t in tags if t != tag)
            _run_worker(
                ["load", "--backend", name, "--device", dev, "--work", str(work), "--others", others], tag, timeout
            )
        outputs = {tag: dict(np.load(work / f"{tag}.npz")) for tag in tags}
        loaded = {tag: dict(np.load(work / f"{tag}-loaded.npz")) for tag in tags}
    rows = (compare_outputs(outputs) + compare_loop_with_fit(outputs) + compare_saved_models(outputs, loaded)
            + exercise_rows(outputs))  # fmt: skip
    payload = {
        "participants": tags,
        "seeds": seeds,
        "mnist_epochs": mnist_epochs,
        "mnist_epoch_loss": {tag: outputs[tag]["mnist_epoch_loss"].tolist() for tag in tags},
        "rows": [asdict(row) for row in rows],
        "max_difference": max_by_check(rows),
        "failed_checks": sorted({row.check for row in rows if not row.passed}),
        "passed": all(row.passed for row in rows),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(Path(out_dir) / "parity.json", payload)
    return payload


def max_by_check(rows: list[Comparison]) -> dict[str, float]:
    worst: dict[str, float] = {}
    for row in rows:
        worst[row.check] = max(worst.get(row.check, 0.0), row.difference)
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
