"""`multibackend report`: one page that shows how the Keras backends differ.

Reads results files (the contract in `results.py`) from one or more folders,
possibly from several machines, and writes `comparison.md`, a self-contained
`comparison.html` (images embedded) and the PNG plots they show. The headline,
the runs table and the plots are about Keras `fit`, what users' code gets;
runs of the framework loop (the fast path) and the benchmark's native loops,
where they exist, are shown beside it per backend, so a reader sees what
Keras costs.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
from pathlib import Path

import numpy as np

from multibackend.errors import ResultsError, UsageError
from multibackend.results import read_results

RESULTS_NAME = re.compile(
    r"^(?P<example>xor|mnist)-(?P<backend>[a-z]+)-(?P<device>cpu|gpu)(?:-(?P<trainer>loop))?\.json$"
)
COLORS = {"torch": "#ee4c2c", "tensorflow": "#ff8f00", "jax": "#2a6fdb"}
LINESTYLES = {"cpu": "-", "gpu": "--"}


def collect_results(folders: list[Path], warn=print, exclude=()) -> dict[tuple[str, str, str, str], dict]:
    """Reads every results file in `folders`; bad ones are named in a warning and skipped.

    Args:
        folders: Folders holding `<example>-<backend>-<device>[-loop].json` files.
        warn: Called with one line per skipped file.
        exclude: Paths not to read (a crashed run's stale file).

    Returns:
        `(example, backend, device, trainer)` -> results payload; the newest wins a tie.
    """
    skipped = {Path(path).resolve() for path in exclude}
    rows: dict[tuple[str, str, str, str], dict] = {}
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"results folder {folder} does not exist")
        for path in sorted(folder.glob("*.json")):
            match = RESULTS_NAME.match(path.name)
            if not match or path.resolve() in skipped:
                continue  # parity.json, bench.json, ...: not a run's results
            try:
                payload = read_results(path, example=match["example"])
                named = (match["backend"], match["device"], match["trainer"] or "fit")
                holds = (payload["backend"], payload["device"], payload.get("trainer", "fit"))
                if named != holds:
                    raise ResultsError(
                        f"{path}: its name says {'/'.join(named)} but it holds {'/'.join(map(str, holds))}"
                    )
            except ResultsError as error:
                warn(f"warning: skipping {error}")
                continue
            key = (payload["example"], payload["backend"], payload["device"], payload.get("trainer", "fit"))
            if key not in rows or payload["created"] > rows[key]["created"]:
                rows[key] = payload
    return rows


def _label(payload: dict) -> str:
    return f"{payload['backend']} ({payload['device']})"


def _style(payload: dict) -> dict:
    return {"color": COLORS.get(payload["backend"], "gray"), "linestyle": LINESTYLES[payload["device"]]}


def _plot_history(plt, runs: list[dict], example: str, path: Path) -> Path:
    metric = runs[0].get("metric", "accuracy")
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(11, 3.8))
    for run in runs:
        epochs = np.arange(1, len(run["history"]["loss"]) + 1)
        loss_axis.plot(epochs, run["history"]["loss"], label=_label(run), **_style(run))
        if metric in run["history"]:
            metric_axis.plot(epochs, run["history"][metric], label=_label(run), **_style(run))
    loss_axis.set(
        title=f"{example.upper()}: Keras fit, training loss per epoch", xlabel="epoch", ylabel="loss", yscale="log"
    )
    metric_axis.set(title=f"{example.upper()}: training {metric} per epoch", xlabel="epoch", ylabel=metric)
    for axis in (loss_axis, metric_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_epoch_seconds(plt, runs: list[dict], path: Path) -> Path:
    grouped = group_runs(runs, "example")
    figure, axes = plt.subplots(1, len(grouped), figsize=(11, 3.8), squeeze=False)
    for axis, (example, group) in zip(axes[0], grouped.items()):
        labels = [_label(run) for run in group]
        medians = [run["median_epoch_seconds"] for run in group]
        firsts = [run["first_epoch_seconds"] for run in group]
        positions = np.arange(len(group))
        axis.bar(positions - 0.2, medians, 0.4, label="median epoch", color=[COLORS.get(r["backend"]) for r in group])
        axis.bar(positions + 0.2, firsts, 0.4, label="first epoch (compile/warm-up)", color="lightgray")
        for x, value in zip(positions, medians):
            axis.annotate(f"{value:.3g}s", (x - 0.2, value), ha="center", va="bottom", fontsize=8)
        axis.set_xticks(positions, labels, rotation=15)
        axis.set(title=f"{example.upper()}: Keras fit, seconds per epoch (lower is faster)", ylabel="seconds")
        axis.legend(fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def group_runs(runs: list[dict], *fields: str) -> dict:
    """Runs grouped by one field (key: its value) or several (key: tuple of values), in order."""
    grouped: dict = {}
    for run in runs:
        key = run[fields[0]] if len(fields) == 1 else tuple(run[field] for field in fields)
        grouped.setdefault(key, []).append(run)
    return grouped


def _plot_misclassified(plt, run: dict, images: np.ndarray, path: Path, count: int = 12) -> Path:
    wrong = run["misclassified"][:count]
    columns = 6
    rows = max(1, -(-len(wrong) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, (index, predicted, actual) in zip(axes.ravel(), wrong):
        axis.imshow(images[index], cmap="gray_r")
        axis.set_title(f"Pred: {predicted}, Actual: {actual}", fontsize=8)
    figure.suptitle(f"Misclassified test digits: {_label(run)}, {len(run['misclassified'])} of 10,000", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def misclassified_overlap(runs: list[dict]) -> dict:
    """How many misclassified test digits all backends share, and how many only one gets wrong."""
    sets = {_label(run): {index for index, _, _ in run["misclassified"]} for run in runs}
    shared = set.intersection(*sets.values()) if sets else set()
    union = set.union(*sets.values()) if sets else set()
    unique = {
        label: len(wrong - set.union(set(), *(s for other, s in sets.items() if other != label)))
        for label, wrong in sets.items()
    }
    return {
        "shared_by_all": len(shared),
        "wrong_anywhere": len(union),
        "unique": unique,
        "total": {k: len(v) for k, v in sets.items()},
    }


def _plot_overlap(plt, overlap: dict, path: Path) -> Path:
    labels = ["shared by all", *(f"only {label}" for label in overlap["unique"])]
    values = [overlap["shared_by_all"], *overlap["unique"].values()]
    figure, axis = plt.subplots(figsize=(7, 3.4))
    bars = axis.bar(
        labels, values, color=["#555", *(COLORS.get(label.split()[0], "gray") for label in overlap["unique"])]
    )
    axis.bar_label(bars)
    axis.set(
        title=f"Misclassified MNIST test digits: shared vs unique ({overlap['wrong_anywhere']} wrong anywhere)",
        ylabel="digits",
    )
    axis.tick_params(axis="x", rotation=15)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def xor_surface(weights: list, grid: np.ndarray) -> np.ndarray:
    """The XOR net's output on `grid` points, computed in NumPy from stored weights."""
    kernel1, bias1, kernel2, bias2 = (np.asarray(w, dtype=np.float64) for w in weights)
    return np.tanh(np.tanh(grid @ kernel1 + bias1) @ kernel2 + bias2)[:, 0]


def _plot_xor_surfaces(plt, runs: list[dict], path: Path) -> Path:
    xs = np.linspace(-0.25, 1.25, 121)
    mesh = np.array(np.meshgrid(xs, xs)).reshape(2, -1).T
    figure, axes = plt.subplots(1, len(runs), figsize=(3.4 * len(runs) + 1.2, 3.6), squeeze=False, layout="constrained")
    for axis, run in zip(axes[0], runs):
        surface = xor_surface(run["final_weights"], mesh).reshape(len(xs), len(xs))
        image = axis.contourf(xs, xs, surface, levels=np.linspace(-1, 1, 21), cmap="coolwarm")
        axis.contour(xs, xs, surface, levels=[0.5], colors="black", linewidths=1.5)
        for (x0, x1), target in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0, 1, 1, 0]):
            axis.scatter(x0, x1, c="white" if target else "black", edgecolors="black", s=60, zorder=3)
        axis.set(title=f"{_label(run)}: acc {run['test']['binary_accuracy']:.2f}", xlabel="x0")
    axes[0][0].set_ylabel("x1")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.9, label="output (black line: 0.5)")
    figure.suptitle("XOR decision surfaces from the shared initial weights", fontsize=10)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _plot_solve_rate(plt, runs: list[dict], path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(7, 3.4))
    for offset, run in enumerate(runs):
        rate = run["solve_rate"]
        jitter = (offset - (len(runs) - 1) / 2) * 0.12
        axis.scatter(
            np.array(rate["seeds"]) + jitter,
            rate["binary_accuracy"],
            label=f"{_label(run)}: {sum(rate['solved'])}/{len(rate['seeds'])} solved",
            color=COLORS.get(run["backend"]),
            s=30,
        )
    axis.set(
        title="XOR from random starts: final binary accuracy per seed (1.0 = solved)",
        xlabel="seed",
        ylabel="binary accuracy",
        ylim=(0.2, 1.08),
    )
    axis.legend(fontsize=8, loc="lower right")
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _fmt(value, pattern: str = "{:.4f}") -> str:
    return "-" if value is None else pattern.format(value)


def table_rows(runs: list[dict]) -> list[list[str]]:
    """The comparison table: one row per (example, backend, device)."""
    rows = []
    for run in runs:
        metric = run.get("metric", "accuracy")
        gates = run["gates"]
        rows.append([
            run["example"], run["backend"], run["backend_version"], run["keras_version"],
            f"{run['device']}: {run['device_name']}", run.get("trainer", "fit"), f"{run['params']:,}",
            _fmt(run["test"].get("loss")), _fmt(run["test"].get(metric)),
            _fmt(run.get("median_epoch_seconds"), "{:.3f}"), _fmt(run.get("first_epoch_seconds"), "{:.3f}"),
            _fmt(run.get("steps_per_second"), "{:,.0f}"), _fmt((run.get("peak_rss_bytes") or 0) / 2**20, "{:,.0f}"),
            f"{sum(g['passed'] for g in gates)}/{len(gates)}" + ("" if run["passed"] else " FAIL"),
        ])  # fmt: skip
    return rows


MEMORY_NOTE = (
    "Peak RSS is the whole process's; Keras also imports the other frameworks installed beside it (JAX under torch, "
    "for one), so a venv holding one backend uses less."
)

TABLE_HEADER = [
    "example", "backend", "version", "keras", "device", "trainer", "params", "test loss", "test acc",
    "median s/epoch", "first epoch s", "steps/s", "peak RSS MiB", "gates",
]  # fmt: skip


def headlines(runs: list[dict], overlap: dict | None, parity: dict | None, costs: list[dict] | None = None,
              unfinished: list | None = None) -> list[str]:  # fmt: skip
    """The few sentences a reader needs: fastest Keras backend, accuracy bar, what Keras costs, disagreements.

    Args:
        runs: The Keras `fit` runs.
        overlap: `misclassified_overlap` of the MNIST runs, or None.
        parity: The parity payload, or None.
        costs: `cost_rows`, or None.
        unfinished: Outcomes of runs that crashed or timed out (objects with example, backend,
            trainer, status and reason), or None.
    """
    lines = []
    for (example, device), group in sorted(group_runs(runs, "example", "device").items()):
        ranked = sorted(group, key=lambda run: run["median_epoch_seconds"])
        fastest = ranked[0]
        others = ", ".join(
            f"{run['backend']} {run['median_epoch_seconds'] / fastest['median_epoch_seconds']:.1f}x"
            for run in ranked[1:]
        )
        lines.append(
            f"Keras `fit` on {example.upper()} ({device}): fastest **{fastest['backend']}** at "
            f"{fastest['median_epoch_seconds']:.3g} s/epoch" + (f" (slower: {others})" if others else "")
        )
    mnist = [run for run in runs if run["example"] == "mnist"]
    if mnist:
        low = [run for run in mnist if run["epochs"] >= 20 and run["test"]["accuracy"] < 0.98]
        accs = ", ".join(f"{_label(run)} {run['test']['accuracy']:.4f} ({run['epochs']} ep)" for run in mnist)
        if low:
            verdict = "Below 0.98 after 20 epochs: " + ", ".join(_label(run) for run in low)
        elif all(run["epochs"] >= 20 for run in mnist):
            verdict = "All 20-epoch MNIST runs reach >= 0.98"
        else:
            verdict = "Not every MNIST run trained the course's 20 epochs"
        lines.append(f"{verdict}: {accs}")
    if overlap:
        unique = ", ".join(f"{label} {count}" for label, count in overlap["unique"].items())
        lines.append(
            f"Where they disagree: {overlap['shared_by_all']} test digits are wrong on every backend; "
            f"wrong on one backend only: {unique}"
        )
    xor = [run for run in runs if run["example"] == "xor" and "solve_rate" in run]
    if xor:
        rates = ", ".join(
            f"{_label(run)} {sum(run['solve_rate']['solved'])}/{len(run['solve_rate']['seeds'])}" for run in xor
        )
        lines.append(f"XOR from random starts does not always train: solved {rates}")
    measured = [row for row in costs or [] if row["loop"] is not None or row["native"] is not None]
    if measured:
        lines.append("What Keras `fit` costs on MNIST (s/epoch: fit / framework loop / native, no Keras): " + "; ".join(
            f"{row['backend']} ({row['device']}) {_fmt(row['fit'], '{:.3g}')} / {_fmt(row['loop'], '{:.3g}')} / "
            f"{_fmt(row['native'], '{:.3g}')}" for row in measured))  # fmt: skip
    if parity:
        lines.append(
            f"Parity ({', '.join(parity['participants'])}): "
            + ("every check within tolerance" if parity["passed"] else "FAILED " + ", ".join(parity["failed_checks"]))
        )
    for outcome in unfinished or []:
        lines.append(f"Did not finish: {outcome.example} on {outcome.backend} ({outcome.trainer}) "
                     f"{outcome.status.upper()}: {outcome.reason}; its old results file is not shown")  # fmt: skip
    return lines


COST_HEADER = [
    "backend", "device", "fit s/epoch", "loop s/epoch", "native s/epoch", "fit / loop", "bench: fit / native",
    "bench: loop / native",
]  # fmt: skip


def cost_rows(fit_runs: list[dict], loop_runs: list[dict], bench: dict | None) -> list[dict]:
    """Per backend and device: MNIST seconds per epoch with Keras `fit`, the framework loop and the native loop.

    Args:
        fit_runs: MNIST results of `fit`.
        loop_runs: MNIST results of the framework loop.
        bench: The `multibackend bench` payload (CPU; native loops and paired ratios), or None.

    Returns:
        Dicts with backend, device, fit, loop, native (s/epoch or None) and the bench's paired ratios.
    """
    loops = {(run["backend"], run["device"]): run for run in loop_runs}
    benched = {(row["backend"], row["trainer"]): row for row in (bench or {}).get("rows", [])}
    rows = []
    for run in fit_runs:
        key = (run["backend"], run["device"])
        on_cpu = run["device"] == "cpu"
        native = benched.get((run["backend"], "native")) if on_cpu else None
        fit_bench = benched.get((run["backend"], "keras-fit")) if on_cpu else None
        loop_bench = benched.get((run["backend"], "keras-loop")) if on_cpu else None
        loop = loops.get(key)
        rows.append({
            "backend": run["backend"], "device": run["device"], "fit": run["median_epoch_seconds"],
            "loop": loop["median_epoch_seconds"] if loop else None,
            "native": native["median_epoch_seconds"] if native else None,
            "fit_over_native": fit_bench["paired_time_ratio_to_native"] if fit_bench else None,
            "loop_over_native": loop_bench["paired_time_ratio_to_native"] if loop_bench else None,
        })  # fmt: skip
    return rows


def _cost_table(rows: list[dict]) -> list[list[str]]:
    return [[row["backend"], row["device"], _fmt(row["fit"], "{:.3f}"), _fmt(row["loop"], "{:.3f}"),
             _fmt(row["native"], "{:.3f}"),
             _fmt(row["fit"] / row["loop"] if row["loop"] else None, "{:.2f}x"),
             _fmt(row["fit_over_native"], "{:.2f}x"), _fmt(row["loop_over_native"], "{:.2f}x")]
            for row in rows]  # fmt: skip


def _read_bench(folders: list[Path], warn) -> dict | None:
    for folder in folders:
        path = folder / "bench.json"
        if path.is_file():
            try:
                bench = json.loads(path.read_text())
                rows = bench["rows"]
                if not all({"backend", "trainer", "median_epoch_seconds", "paired_time_ratio_to_native"} <= set(row)
                           for row in rows):  # fmt: skip
                    raise ValueError("rows lack backend, trainer or seconds")
                return bench
            except (ValueError, KeyError, TypeError) as error:
                warn(f"warning: skipping {path}: {error}")
    return None


def write_report(folders: list[Path], out_dir: Path, warn=print, unfinished: list | None = None,
                 merged: list[Path] | None = None) -> Path:  # fmt: skip
    """Writes `comparison.md`, `comparison.html` and the plots to `out_dir`.

    Args:
        folders: Results folders to merge; their `parity.json` and `bench.json` are shown too.
        out_dir: Where the report goes.
        warn: Called with one line per skipped results file.
        merged: More folders whose run results only are shown (e.g. `reports/gpu`, runs of another
            machine): their parity and bench files belong to other runs.
        unfinished: Outcomes (see `compare.Outcome`) of runs that crashed or timed out: their
            results files are not read, and the report says they did not finish.

    Returns:
        The path of the HTML report.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unfinished = list(unfinished or [])
    collected = collect_results([*folders, *(merged or [])], warn=warn, exclude=[o.path for o in unfinished])
    order = {"torch": 0, "tensorflow": 1, "jax": 2}
    ordered = sorted(collected.values(), key=lambda r: (r["example"] != "xor", r["device"], order.get(r["backend"], 9)))
    runs = [run for run in ordered if run.get("trainer", "fit") == "fit"]
    loop_runs = [run for run in ordered if run.get("trainer", "fit") != "fit"]
    if not runs:
        raise UsageError(
            f"no usable Keras fit results files in {', '.join(str(f) for f in folders)}; run `multibackend run` first"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, Path]] = []
    grouped = group_runs(runs, "example")
    for example, group in grouped.items():
        figures.append(
            (
                f"{example.upper()}: training curves",
                _plot_history(plt, group, example, out_dir / f"{example}-history.png"),
            )
        )
    figures.append(("Speed", _plot_epoch_seconds(plt, runs, out_dir / "epoch-seconds.png")))
    overlap = None
    mnist_runs = [run for run in grouped.get("mnist", []) if "misclassified" in run]
    if mnist_runs:
        images = _mnist_test_images(warn)
        if images is not None:
            for run in mnist_runs:
                name = f"misclassified-{run['backend']}-{run['device']}.png"
                figures.append(
                    (f"Misclassified digits: {_label(run)}", _plot_misclassified(plt, run, images, out_dir / name))
                )
        overlap = misclassified_overlap(mnist_runs)
        figures.append(
            (
                "Misclassified digits: shared vs unique",
                _plot_overlap(plt, overlap, out_dir / "misclassified-overlap.png"),
            )
        )
    xor_runs = [run for run in grouped.get("xor", []) if "final_weights" in run]
    if xor_runs:
        figures.append(("XOR decision surfaces", _plot_xor_surfaces(plt, xor_runs, out_dir / "xor-surfaces.png")))
        figures.append(("XOR solve rate over seeds", _plot_solve_rate(plt, xor_runs, out_dir / "xor-solve-rate.png")))
    parity = _read_parity(folders, warn)
    costs = cost_rows([run for run in runs if run["example"] == "mnist"], loop_runs, _read_bench(folders, warn))
    lines = headlines(runs, overlap, parity, costs, unfinished)
    tables = [("Keras fit runs", TABLE_HEADER, table_rows(runs))]
    if loop_runs:
        tables.append(("Fast path: the framework loop over the same compiled model (not Keras fit)", TABLE_HEADER,
                       table_rows(loop_runs)))  # fmt: skip
    if any(row["loop"] is not None or row["native"] is not None for row in costs):
        tables.append(("What Keras fit costs: MNIST seconds per epoch", COST_HEADER, _cost_table(costs)))
    if unfinished:
        tables.append(
            (
                "Runs that did not finish",
                ["example", "backend", "device", "trainer", "status", "last error"],
                [[o.example, o.backend, o.device, o.trainer, o.status.upper(), o.reason] for o in unfinished],
            )
        )
    sources = sorted({f"{run['host']}: {run['device_name']}" for run in ordered if "host" in run})
    _write_markdown(out_dir / "comparison.md", lines, tables, figures, parity, sources)
    html_path = out_dir / "comparison.html"
    _write_html(html_path, lines, tables, figures, parity, sources)
    return html_path


def _mnist_test_images(warn) -> np.ndarray | None:
    from multibackend import data

    try:
        _, (x_test, _) = data.load_mnist(allow_download=False)
    except UsageError as error:
        warn(f"warning: no misclassified-digit pictures: {error}")
        return None
    return x_test


def _read_parity(folders: list[Path], warn) -> dict | None:
    for folder in folders:
        path = folder / "parity.json"
        if path.is_file():
            try:
                parity = json.loads(path.read_text())
                if not {"participants", "rows", "passed", "failed_checks", "max_difference"} <= set(parity):
                    raise ValueError("missing fields")
                return parity
            except ValueError as error:
                warn(f"warning: skipping {path}: {error}")
    return None


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _parity_rows(parity: dict) -> list[list[str]]:
    worst: dict[str, dict] = {}
    for row in parity["rows"]:
        if row["check"] not in worst or row["difference"] > worst[row["check"]]["difference"]:
            worst[row["check"]] = row
    return [
        [
            check,
            row["pair"],
            f"{row['difference']:.3g}",
            f"{row['tolerance']:.3g}",
            "pass" if all(r["passed"] for r in parity["rows"] if r["check"] == check) else "FAIL",
        ]
        for check, row in sorted(worst.items())
    ]


PARITY_HEADER = ["check", "worst pair", "max difference", "tolerance", "all pairs"]


COST_NOTE = (
    "fit and loop: the median epoch of the 20-epoch runs above; native: the framework's own loop without Keras, "
    "and the paired ratios, from `multibackend bench` on the same machine (epochs timed side by side in one process)."
)


def _write_markdown(path: Path, lines, tables, figures, parity, sources) -> None:
    parts = [
        "# Backend comparison",
        "",
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by `multibackend report`.",
        "",
    ]
    parts += [f"- {line}" for line in lines]
    for title, header, rows in tables:
        parts += ["", f"## {title}", "", _markdown_table(header, rows), ""]
        parts += [COST_NOTE, ""] if header is COST_HEADER else []
    parts += ["Machines: " + "; ".join(sources), ""] if sources else []
    parts += [MEMORY_NOTE, ""]
    if parity:
        parts += ["## Parity: same weights, same numbers", "", _markdown_table(PARITY_HEADER, _parity_rows(parity)), ""]
    for title, figure in figures:
        parts += [f"## {title}", "", f"![{title}]({figure.name})", ""]
    path.write_text("\n".join(parts))


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"fail" if "FAIL" in cell else ""}">{html.escape(cell)}</td>' for cell in row)
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _write_html(path: Path, lines, tables, figures, parity, sources) -> None:
    bold = re.compile(r"\*\*(.+?)\*\*")
    code = re.compile(r"`(.+?)`")
    items = "".join("<li>" + code.sub(r"<code>\1</code>", bold.sub(r"<b>\1</b>", html.escape(line))) + "</li>"
                    for line in lines)  # fmt: skip
    images = "".join(
        f'<figure><figcaption>{html.escape(title)}</figcaption><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{base64.b64encode(figure.read_bytes()).decode()}"></figure>'
        for title, figure in figures
    )
    parity_html = (
        f"<h2>Parity: same weights, same numbers</h2>{_html_table(PARITY_HEADER, _parity_rows(parity))}"
        if parity
        else ""
    )
    tables_html = "".join(
        f"<h2>{html.escape(title)}</h2>{_html_table(header, rows)}"
        + (f"<p class=small>{html.escape(COST_NOTE)}</p>" if header is COST_HEADER else "")
        for title, header, rows in tables
    )
    machines = f"<p class=small>Machines: {html.escape('; '.join(sources))}</p>" if sources else ""
    machines += f"<p class=small>{html.escape(MEMORY_NOTE)}</p>"
    style = (
        "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;font-size:13px;margin:.5em 0}th,td{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f0f0f0}td:nth-child(-n+5){text-align:left}td.fail{background:#fdd;font-weight:bold}"
        "ul.headlines li{margin:.3em 0;font-size:15px}figure{margin:1em 0}img{max-width:100%}"
        "figcaption{font-weight:bold;margin-bottom:.3em}.small{font-size:12px;color:#555}"
    )
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Backend comparison</title><style>{style}</style></head><body>"
        f"<h1>Backend comparison: Keras fit on TensorFlow, PyTorch and JAX, the course's examples</h1>"
        f"<p class=small>Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by multibackend report.</p>"
        f"<ul class=headlines>{items}</ul>{tables_html}{machines}{parity_html}{images}"
        "</body></html>"
    )
    path.write_text(document)
