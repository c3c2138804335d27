"""`multibackend report`: one page that shows how the Keras backends differ.

Reads results files (see `collect`) from one or more folders, possibly from
several machines, and writes `comparison.md`, a self-contained `comparison.html`
(images embedded) from the Jinja2 templates in `templates/`, and the PNG plots
they show (see `plots`). The headline, the runs table and the plots are about
Keras `fit`, what users' code gets; runs of the framework loop (the fast path)
and the benchmark's native loops, where they exist, are shown beside it per
backend, so a reader sees what Keras costs.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from multibackend.backends import NAMES
from multibackend.course.gates import MNIST_ACCURACY_BY_EPOCHS, mnist_accuracy_threshold
from multibackend.report import columns, ratios
from multibackend.report.collect import (
    collect_results,
    group_runs,
    label,
    misclassified_overlap,
    read_bench,
    read_parity,
)
from multibackend.report.plots import (
    plot_epoch_seconds,
    plot_history,
    plot_misclassified,
    plot_overlap,
    plot_solve_rate,
    plot_xor_surfaces,
)
from multibackend.results import BenchResult, ParityResult, RunResult
from multibackend.runtime import templating
from multibackend.runtime.errors import OutputError, UsageError


def render(template: str, context: dict) -> str:
    """Renders one of the report's templates (`multibackend/report/templates/`)."""
    return templating.render("multibackend.report", template, context)


MEMORY_NOTE = (
    "Peak RSS is the whole process's; Keras also imports the other frameworks installed beside it (JAX under torch, "
    "for one), so a venv holding one backend uses less."
)


COST_NOTE = (
    "fit and loop: the median epoch of the 20-epoch runs above; native: the framework's own loop without Keras, "
    "and the paired ratios, from `multibackend-bench` on the same machine (epochs timed side by side in one process)."
)


def headlines(
    runs: list[RunResult],
    overlap: dict | None,
    parity: ParityResult | None,
    costs: list[dict] | None = None,
    unfinished: list | None = None,
) -> list[str]:
    """The few sentences a reader needs: fastest Keras backend, accuracy bar, what Keras costs, disagreements.

    Args:
        runs: The Keras `fit` runs.
        overlap: `misclassified_overlap` of the MNIST runs, or None.
        parity: The parity payload, or None.
        costs: `cost_rows`, or None.
        unfinished: Outcomes of runs that crashed or timed out (objects with example, backend,
            trainer, status and reason), or None.
    """
    lines = _speed_lines(runs)
    lines += _mnist_accuracy_lines([run for run in runs if run.example == "mnist"])
    if overlap:
        unique = ", ".join(f"{label} {count}" for label, count in overlap["unique"].items())
        lines.append(
            f"Where they disagree: {overlap['shared_by_all']} test digits are wrong on every backend; "
            f"wrong on one backend only: {unique}"
        )
    xor = [run for run in runs if run.example == "xor" and run.solve_rate is not None]
    if xor:
        rates = ", ".join(f"{label(run)} {sum(run.solve_rate['solved'])}/{len(run.solve_rate['seeds'])}" for run in xor)
        lines.append(f"XOR from random starts does not always train: solved {rates}")
    lines += _cost_lines(costs or [])
    if parity:
        lines.append(
            f"Parity ({', '.join(parity.participants)}): "
            + ("every check within tolerance" if parity.passed else "FAILED " + ", ".join(parity.failed_checks))
        )
    for outcome in unfinished or []:
        lines.append(
            f"Did not finish: {outcome.example} on {outcome.backend} ({outcome.trainer}) "
            f"{outcome.status.upper()}: {outcome.reason}; its old results file is not shown"
        )
    return lines


def _speed_lines(runs: list[RunResult]) -> list[str]:
    """Per example and device: the fastest backend and how much slower the others are."""
    lines = []
    for (example, device), group in sorted(group_runs(runs, "example", "device").items()):
        times = {run.backend: run.median_epoch_seconds for run in group}
        lines.append(f"Keras `fit` on {example.upper()} ({device}): " + ratios.speed_text(times, "s/epoch"))
    return lines


def _mnist_accuracy_lines(mnist: list[RunResult]) -> list[str]:
    """Whether the MNIST runs clear the course's bar (`course.gates`: the bar for the epochs each one trained)."""
    if not mnist:
        return []
    course_epochs, course_bar = MNIST_ACCURACY_BY_EPOCHS[0]
    low = [run for run in mnist if run.test["accuracy"] < mnist_accuracy_threshold(run.epochs)]
    accs = ", ".join(f"{label(run)} {run.test['accuracy']:.4f} ({run.epochs} ep)" for run in mnist)
    if low:
        verdict = "Below the bar for their epochs: " + ", ".join(
            f"{label(run)} (needs >= {mnist_accuracy_threshold(run.epochs):g})" for run in low
        )
    elif all(run.epochs >= course_epochs for run in mnist):
        verdict = f"All {course_epochs}-epoch MNIST runs reach >= {course_bar:g}"
    else:
        verdict = f"Not every MNIST run trained the course's {course_epochs} epochs (each clears the bar for its own)"
    return [f"{verdict}: {accs}"]


def _cost_lines(costs: list[dict]) -> list[str]:
    """What Keras `fit` costs against the framework loop and the native trainer, where they were measured."""
    measured = [row for row in costs if row["loop"] is not None or row["native"] is not None]
    if not measured:
        return []
    seconds = lambda value: columns.number(value, "{:.3g}")  # noqa: E731
    return [
        "What Keras `fit` costs on MNIST (s/epoch: fit / framework loop / native, no Keras): "
        + "; ".join(
            f"{row['backend']} ({row['device']}) {seconds(row['fit'])} / {seconds(row['loop'])} / "
            f"{seconds(row['native'])}"
            for row in measured
        )
    ]


def cost_rows(fit_runs: list[RunResult], loop_runs: list[RunResult], bench: BenchResult | None) -> list[dict]:
    """Per backend and device: MNIST seconds per epoch with Keras `fit`, the framework loop and the native loop.

    Args:
        fit_runs: MNIST results of `fit`.
        loop_runs: MNIST results of the framework loop.
        bench: The `multibackend-bench` payload (CPU; native loops and paired ratios), or None.

    Returns:
        Dicts with backend, device, fit, loop, native (s/epoch or None) and the bench's paired ratios.
    """
    loops = {(run.backend, run.device): run for run in loop_runs}
    benched = {(row["backend"], row["trainer"]): row for row in (bench.rows if bench else [])}
    rows = []
    for run in fit_runs:
        key = (run.backend, run.device)
        on_cpu = run.device == "cpu"
        native = benched.get((run.backend, "native")) if on_cpu else None
        fit_bench = benched.get((run.backend, "keras-fit")) if on_cpu else None
        loop_bench = benched.get((run.backend, "keras-loop")) if on_cpu else None
        loop = loops.get(key)
        rows.append(
            {
                "backend": run.backend,
                "device": run.device,
                "fit": run.median_epoch_seconds,
                "loop": loop.median_epoch_seconds if loop else None,
                "native": native["median_epoch_seconds"] if native else None,
                "fit_over_native": fit_bench["paired_time_ratio_to_native"] if fit_bench else None,
                "loop_over_native": loop_bench["paired_time_ratio_to_native"] if loop_bench else None,
            }
        )
    return rows


def write_report(
    folders: list[Path], out_dir: Path, warn=print, unfinished: list | None = None, merged: list[Path] | None = None
) -> Path:
    """Writes `comparison.md`, `comparison.html` and the plots to `out_dir`, all or nothing.

    Everything is made in a temporary folder inside `out_dir` and moved in at the end, so a failure
    (a bad file, a full disk) leaves the previous report whole.

    Args:
        folders: Results folders to merge; their `parity.json` and `bench.json` are shown too.
        out_dir: Where the report goes.
        warn: Called with one line per skipped file.
        unfinished: Outcomes (see `compare.Outcome`) of runs that crashed or timed out.
        merged: More folders whose run results only are shown (e.g. `reports/gpu`).

    Returns:
        The path of the HTML report.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".comparison-", dir=out_dir))
    except OSError as error:
        raise OutputError(f"cannot write the report in {out_dir}: {error.strerror or error}") from None
    try:
        _write_report(folders, staging, warn, unfinished, merged)
        for path in sorted(staging.iterdir()):
            os.replace(path, out_dir / path.name)
    except OSError as error:
        raise OutputError(f"cannot write the report in {out_dir}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir / "comparison.html"


def _write_report(
    folders: list[Path], out_dir: Path, warn=print, unfinished: list | None = None, merged: list[Path] | None = None
) -> None:
    """Writes `comparison.md`, `comparison.html` and the plots to `out_dir`.

    Args:
        folders: Results folders to merge; their `parity.json` and `bench.json` are shown too.
        out_dir: Where the report goes.
        warn: Called with one line per skipped results file.
        merged: More folders whose run results only are shown (e.g. `reports/gpu`, runs of another
            machine): their parity and bench files belong to other runs.
        unfinished: Outcomes (see `compare.Outcome`) of runs that crashed or timed out: their
            results files are not read, and the report says they did not finish.
    """
    unfinished = list(unfinished or [])
    collected = collect_results([*folders, *(merged or [])], warn=warn, exclude=[o.path for o in unfinished])
    order = {name: index for index, name in enumerate(NAMES)}
    ordered = sorted(collected.values(), key=lambda r: (r.example != "xor", r.device, order.get(r.backend, 9)))
    runs = [run for run in ordered if run.trainer == "fit"]
    loop_runs = [run for run in ordered if run.trainer != "fit"]
    if not runs:
        raise UsageError(
            f"no usable Keras fit results files in {', '.join(str(f) for f in folders)}; run `multibackend run` first"
        )
    figures, overlap = _figures(runs, out_dir, warn)
    parity = read_parity(folders, warn)
    costs = cost_rows([run for run in runs if run.example == "mnist"], loop_runs, read_bench(folders, warn))
    worst = columns.parity_worst(parity) if parity else None
    context = {
        "generated": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M}",
        "headlines": headlines(runs, overlap, parity, costs, unfinished),
        "tables": [
            {"title": title, "header": columns.header(table), "rows": columns.rows(table, items), "note": note}
            for title, table, items, note in _tables(runs, loop_runs, costs, unfinished)
        ],
        "machines": sorted({f"{run.host}: {run.device_name}" for run in ordered if run.host}),
        "memory_note": MEMORY_NOTE,
        "parity": (
            {"header": columns.header(columns.PARITY_COLUMNS), "rows": columns.rows(columns.PARITY_COLUMNS, worst)}
            if worst
            else None
        ),
        "figures": [
            {"title": title, "file": path.name, "data": base64.b64encode(path.read_bytes()).decode()}
            for title, path in figures
        ],
    }
    (out_dir / "comparison.md").write_text(render("comparison.md.j2", context))
    (out_dir / "comparison.html").write_text(render("comparison.html.j2", context))


def _tables(runs: list[RunResult], loop_runs: list[RunResult], costs: list[dict], unfinished: list) -> list[tuple]:
    """The report's tables: (title, columns, items, note)."""
    tables = [("Keras fit runs", columns.RUN_COLUMNS, runs, "")]
    if loop_runs:
        title = "Fast path: the framework loop over the same compiled model (not Keras fit)"
        tables.append((title, columns.RUN_COLUMNS, loop_runs, ""))
    if any(row["loop"] is not None or row["native"] is not None for row in costs):
        tables.append(("What Keras fit costs: MNIST seconds per epoch", columns.COST_COLUMNS, costs, COST_NOTE))
    if unfinished:
        tables.append(("Runs that did not finish", columns.UNFINISHED_COLUMNS, unfinished, ""))
    return tables


def _figures(runs: list[RunResult], out_dir: Path, warn) -> tuple[list[tuple[str, Path]], dict | None]:
    """Draws the report's plots into `out_dir`.

    Returns:
        (title, path) per plot, and the MNIST runs' `misclassified_overlap` (None without them).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = group_runs(runs, "example")
    figures = [
        (f"{example.upper()}: training curves", plot_history(plt, group, example, out_dir / f"{example}-history.png"))
        for example, group in grouped.items()
    ]
    figures.append(("Speed", plot_epoch_seconds(plt, runs, out_dir / "epoch-seconds.png")))
    overlap = None
    mnist_runs = [run for run in grouped.get("mnist", []) if run.misclassified is not None]
    if mnist_runs:
        images = _mnist_test_images(warn)
        if images is not None:
            for run in mnist_runs:
                name = f"misclassified-{run.backend}-{run.device}.png"
                figures.append(
                    (f"Misclassified digits: {label(run)}", plot_misclassified(plt, run, images, out_dir / name))
                )
        overlap = misclassified_overlap(mnist_runs)
        path = plot_overlap(plt, overlap, out_dir / "misclassified-overlap.png")
        figures.append(("Misclassified digits: shared vs unique", path))
    xor_runs = [run for run in grouped.get("xor", []) if run.final_weights is not None]
    if xor_runs:
        figures.append(("XOR decision surfaces", plot_xor_surfaces(plt, xor_runs, out_dir / "xor-surfaces.png")))
        figures.append(("XOR solve rate over seeds", plot_solve_rate(plt, xor_runs, out_dir / "xor-solve-rate.png")))
    return figures, overlap


def _mnist_test_images(warn) -> np.ndarray | None:
    from multibackend.course import data

    try:
        _, (x_test, _) = data.load_mnist(allow_download=False)
    except UsageError as error:
        warn(f"warning: no misclassified-digit pictures: {error}")
        return None
    return x_test
