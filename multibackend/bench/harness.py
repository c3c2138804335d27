"""`multibackend-bench`: each backend's Keras paths against its own native loop.

Every trainer runs in fresh processes (peak memory is per process), the
trainers of one backend alternating, repeat after repeat. Each repeat also
runs one process that trains side by side every trainer that goes epoch by
epoch, one epoch each in turn: the paired time ratio compares epochs of one
round, which a shared machine's slow and fast phases hit alike. Only ratios
within one run are meaningful.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import sys
from pathlib import Path

from multibackend.bench.worker import ALTERNATING, MEASURED_FIT, TRAINERS, Measurement
from multibackend.course.networks import MNIST
from multibackend.results import BenchResult, write_json_atomic
from multibackend.runtime import templating
from multibackend.runtime.backend import chosen_backends
from multibackend.runtime.devices import cpu_name
from multibackend.runtime.errors import UsageError
from multibackend.runtime.jobs import JobRequest, run_job


def training_flops_per_sample(layer_sizes: list[int]) -> int:
    """FLOPs of one training sample of a dense net: forward, weight gradients, and input
    gradients of every layer but the first (2 FLOPs per multiply-add)."""
    pairs = list(zip(layer_sizes[:-1], layer_sizes[1:]))
    forward = sum(2 * n_in * n_out for n_in, n_out in pairs)
    input_gradients = sum(2 * n_in * n_out for n_in, n_out in pairs[1:])
    return 2 * forward + input_gradients


def estimated_peak_gflops() -> float:
    """A rough fp32 peak of this CPU: cores x clock x FLOPs per cycle (FMA: 32 with AVX2, 64 with AVX-512)."""
    megahertz, flags = 2000.0, ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("cpu MHz") and megahertz == 2000.0:
                    megahertz = float(line.split(":")[1])
                elif line.startswith("flags") and not flags:
                    flags = line
    except OSError:
        pass
    per_cycle = 64 if "avx512f" in flags else 32 if "fma" in flags else 16
    return (os.cpu_count() or 1) * megahertz / 1000 * per_cycle


def measure_in_a_process(backend: str, trainer: str, epochs: int, warmup: int) -> dict:
    """Runs one bench process (a job with `backend` fixed) and returns what it measured."""
    measurement = Measurement(backend, trainer, epochs, warmup)
    # The job hides the other frameworks (each backend measured as if only its own were installed); the worker
    # imports Keras itself, after refusing an unknown trainer.
    request = JobRequest(backend, "multibackend.bench.worker:measure", measurement, import_keras=False)
    return run_job(request, timeout=3600).result(f"bench of {trainer} on {backend}")


# The training images take 180 MiB; a process with less than this on transparent
# huge pages had (most of) them on 4 KiB pages, which made epochs ~1.5x slower here.
HUGE_PAGE_THRESHOLD = 128 * 2**20


def on_huge_pages(measurement: dict) -> bool:
    """Whether a measured process held its training data on transparent huge pages."""
    return (measurement.get("huge_page_bytes") or 0) >= HUGE_PAGE_THRESHOLD


def paired_by_round(trainer: str, alternating: list[dict]) -> bool:
    """Whether `trainer` ran in the alternating processes (else it is paired by repeat)."""
    return trainer in alternating[0]["epoch_seconds"]


def paired_time_ratio(
    trainer: str, processes: list[dict], native_processes: list[dict], alternating: list[dict]
) -> float:
    """The median ratio of `trainer`'s epoch time to the native loop's, measured next to each other.

    Trainers of the alternating processes: epoch by epoch within a round of one
    process. `run-mnist`, a whole run: its process's median epoch over the
    native process's median epoch of the same repeat.
    """
    if paired_by_round(trainer, alternating):
        ratios = [
            mine / native
            for measured in alternating
            for mine, native in zip(measured["epoch_seconds"][trainer], measured["epoch_seconds"]["native"])
        ]
    else:
        ratios = [
            statistics.median(mine["epoch_seconds"]) / statistics.median(native["epoch_seconds"])
            for mine, native in zip(processes, native_processes)
        ]
    return statistics.median(ratios)


def paired_overhead(alternating: list[dict], trainer: str, plain: str = "keras-fit") -> float | None:
    """The median ratio of `trainer`'s epoch to `plain`'s in the same round (None: not both alternated)."""
    if not paired_by_round(trainer, alternating) or not paired_by_round(plain, alternating):
        return None
    return statistics.median(
        mine / other
        for measured in alternating
        for mine, other in zip(measured["epoch_seconds"][trainer], measured["epoch_seconds"][plain])
    )


def _row(backend: str, trainer: str, measured: list[dict], samples: dict, alternating: list[dict], peak: float) -> dict:
    """One trainer's row: its medians, its ratios to the native loop's (`samples["native"]`), its paired ratio."""
    flops_per_epoch = training_flops_per_sample(MNIST.network.layer_sizes) * MNIST.train_samples
    native = statistics.median(s for m in samples["native"] for s in m["epoch_seconds"])
    native_best = min(s for m in samples["native"] for s in m["epoch_seconds"])
    native_rss = statistics.median(m["peak_rss_bytes"] for m in samples["native"])
    seconds = statistics.median(s for m in measured for s in m["epoch_seconds"])
    best = min(s for m in measured for s in m["epoch_seconds"])
    rss = statistics.median(m["peak_rss_bytes"] for m in measured)
    gflops = flops_per_epoch / seconds / 1e9
    return {
        "backend": backend,
        "trainer": trainer,
        "median_epoch_seconds": seconds,
        "time_ratio_to_native": seconds / native,
        "paired_time_ratio_to_native": paired_time_ratio(trainer, measured, samples["native"], alternating),
        "paired_by": "round" if paired_by_round(trainer, alternating) else "repeat",
        "best_epoch_seconds": best,
        "best_time_ratio_to_native": best / native_best,
        "peak_rss_bytes": rss,
        "memory_ratio_to_native": rss / native_rss,
        "gflops": gflops,
        "share_of_peak": gflops / peak,
        "test_accuracy": statistics.median(m["test_accuracy"] for m in measured),
        "all_epoch_seconds": [s for m in measured for s in m["epoch_seconds"]],
        "processes_on_huge_pages": sum(on_huge_pages(m) for m in measured),
        "processes": len(measured),
        **({"paired_time_ratio_to_fit": paired_overhead(alternating, trainer)} if trainer == MEASURED_FIT else {}),
    }


def run_bench(backends: list[str] | None, *, repeats: int, epochs: int, warmup: int, progress=print) -> BenchResult:
    """Measures every trainer of every chosen backend; returns rows with ratios to native."""
    chosen = chosen_backends(backends)
    for backend in [name for name in chosen if "native" not in TRAINERS[name]]:
        # Every number here is a ratio to the native loop: without one there is nothing to measure against.
        if backends:
            raise UsageError(f"backend {backend!r} has no native loop (multibackend/bench/native/): not benchmarked")
        progress(f"  {backend:<10} has no native loop (multibackend/bench/native/): not benchmarked")
        chosen.remove(backend)
    flops_per_epoch = training_flops_per_sample(MNIST.network.layer_sizes) * MNIST.train_samples
    peak = estimated_peak_gflops()
    rows = []
    for backend in chosen:
        samples: dict[str, list[dict]] = {trainer: [] for trainer in (*TRAINERS[backend], ALTERNATING)}
        for repeat in range(repeats):
            for trainer in samples:
                progress(f"  {backend:<10} {trainer:<18} repeat {repeat + 1}/{repeats}")
                samples[trainer].append(measure_in_a_process(backend, trainer, epochs, warmup))
        alternating = samples.pop(ALTERNATING)
        rows += [_row(backend, trainer, measured, samples, alternating, peak) for trainer, measured in samples.items()]
    return BenchResult(
        machine=f"{platform.node()}: {cpu_name()}",
        estimated_peak_gflops=peak,
        flops_per_epoch=flops_per_epoch,
        repeats=repeats,
        timed_epochs_per_repeat=epochs,
        warmup_epochs=warmup,
        command=" ".join(["multibackend-bench", *sys.argv[1:]]),
        rows=rows,
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def format_table(result: BenchResult) -> str:
    header = (
        f"{'backend':<11}{'trainer':<19}{'s/epoch':>9}{'x native':>10}{'paired x':>10}{'best s':>8}{'x native':>10}"
        f"{'peak MiB':>10}{'x native':>10}{'GFLOP/s':>9}{'% peak':>8}{'test acc':>10}{'huge pg':>9}"
    )
    lines = [header]
    for row in result.rows:
        lines.append(
            f"{row['backend']:<11}{row['trainer']:<19}{row['median_epoch_seconds']:>9.3f}{row['time_ratio_to_native']:>10.2f}"
            f"{row['paired_time_ratio_to_native']:>10.2f}"
            f"{row['best_epoch_seconds']:>8.3f}{row['best_time_ratio_to_native']:>10.2f}"
            f"{row['peak_rss_bytes'] / 2**20:>10.0f}{row['memory_ratio_to_native']:>10.2f}{row['gflops']:>9.1f}"
            f"{100 * row['share_of_peak']:>8.1f}{row['test_accuracy']:>10.4f}"
            f"{row['processes_on_huge_pages']:>7}/{row['processes']}"
        )
    return "\n".join(lines)


TRAINER_LEGEND = [
    "`keras-fit`: Keras `fit`, as the course writes it.",
    "`keras-fit-measured`: `fit` as `multibackend verify` runs it in every verified run, with its step timer "
    "(`multibackend/verify/measure.py`): its overhead is its paired time over `keras-fit`'s.",
    "`keras-fit-steps32`: `fit` with `steps_per_execution=32` (JAX, TensorFlow; Keras on torch runs such steps one "
    "by one in Python, so it is not measured there).",
    "`keras-loop`: the same Keras model trained by the framework's own loop (`--trainer loop`, "
    "`multibackend/backends/<name>/loop.py`).",
    "`run-mnist`: `multibackend run mnist` with its defaults, which is what `nox -s mnist-<backend>` runs "
    "(the loop, plus evaluation and the misclassified digits).",
    "`native`: the network written directly in the framework, no Keras (`multibackend/bench/native/`): the baseline.",
]


def goal_lines(rows: list[dict], goal: float = 1.15) -> list[str]:
    """Per backend: its fastest Keras trainer and what `nox -s mnist-<backend>` runs, against `goal`.

    Time is judged by the paired ratio, memory by the median peak of separate processes.
    """

    def verdict(row: dict) -> str:
        paired, memory_ratio = row["paired_time_ratio_to_native"], row["memory_ratio_to_native"]
        within = paired <= goal and memory_ratio <= goal
        return (
            f"{paired:.2f}x time paired by {row['paired_by']} (medians of separate processes "
            f"{row['time_ratio_to_native']:.2f}x, best epochs {row['best_time_ratio_to_native']:.2f}x), "
            f"{memory_ratio:.2f}x memory: {'within' if within else 'NOT within'} {goal}x"
        )

    lines = []
    by_backend: dict[str, list[dict]] = {}
    for row in rows:
        by_backend.setdefault(row["backend"], []).append(row)
    for backend, group in by_backend.items():
        keras_rows = [row for row in group if row["trainer"].startswith("keras-") and row["trainer"] != MEASURED_FIT]
        fastest = min(keras_rows, key=lambda row: row["paired_time_ratio_to_native"])
        line = f"{backend}: fastest Keras path `{fastest['trainer']}` {verdict(fastest)}"
        session = [row for row in group if row["trainer"] == "run-mnist"]
        if session:
            line += f"; `nox -s mnist-{backend}` (run-mnist) {verdict(session[0])}"
        lines.append(line)
    return lines


def overhead_lines(rows: list[dict]) -> list[str]:
    """Per backend: what verify's measurement costs `fit`, paired by round."""
    return [
        f"{row['backend']}: `fit` measured as verify measures it takes {row['paired_time_ratio_to_fit']:.3f}x the time "
        "of `fit` without (median over the rounds of one process)"
        for row in rows
        if row.get("paired_time_ratio_to_fit") is not None
    ]


def write_outputs(result: BenchResult, results_dir: Path, report_dir: Path) -> tuple[Path, Path]:
    """Writes `RESULTS/bench.json` and `OUT/bench.md`; returns their paths."""
    json_path = write_json_atomic(results_dir / "bench.json", result.to_json())
    report_dir.mkdir(parents=True, exist_ok=True)
    context = {
        **result.to_json(),
        "legend": TRAINER_LEGEND,
        "goal": goal_lines(result.rows),
        "overhead": overhead_lines(result.rows),
        "arguments": (result.command or "").removeprefix("multibackend-bench").strip(),
    }
    md_path = report_dir / "bench.md"
    md_path.write_text(templating.render("multibackend.bench", "bench.md.j2", context))
    return json_path, md_path
