"""The comparison's plots (matplotlib, Agg): training curves, seconds per epoch, digits, XOR surfaces.

Each `plot_*` takes `plt` (pyplot, imported by the caller after choosing the Agg
backend) and writes one PNG, whose path it returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from multibackend.backends import NAMES, backend
from multibackend.report.collect import group_runs, label
from multibackend.results import RunResult

COLORS = {name: backend(name).COLOR for name in NAMES}


LINESTYLES = {"cpu": "-", "gpu": "--"}


def style(run: RunResult) -> dict:
    return {"color": COLORS.get(run.backend, "gray"), "linestyle": LINESTYLES[run.device]}


def plot_history(plt, runs: list[RunResult], example: str, path: Path) -> Path:
    metric = runs[0].metric
    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(11, 3.8))
    for run in runs:
        epochs = np.arange(1, len(run.history["loss"]) + 1)
        loss_axis.plot(epochs, run.history["loss"], label=label(run), **style(run))
        if metric in run.history:
            metric_axis.plot(epochs, run.history[metric], label=label(run), **style(run))
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


def plot_epoch_seconds(plt, runs: list[RunResult], path: Path) -> Path:
    grouped = group_runs(runs, "example")
    figure, axes = plt.subplots(1, len(grouped), figsize=(11, 3.8), squeeze=False)
    for axis, (example, group) in zip(axes[0], grouped.items()):
        labels = [label(run) for run in group]
        medians = [run.median_epoch_seconds for run in group]
        firsts = [run.first_epoch_seconds for run in group]
        positions = np.arange(len(group))
        axis.bar(positions - 0.2, medians, 0.4, label="median epoch", color=[COLORS.get(r.backend) for r in group])
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


def plot_misclassified(plt, run: RunResult, images: np.ndarray, path: Path, count: int = 12) -> Path:
    wrong = run.misclassified[:count]
    columns = 6
    rows = max(1, -(-len(wrong) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, (index, predicted, actual) in zip(axes.ravel(), wrong):
        axis.imshow(images[index], cmap="gray_r")
        axis.set_title(f"Pred: {predicted}, Actual: {actual}", fontsize=8)
    figure.suptitle(f"Misclassified test digits: {label(run)}, {len(run.misclassified)} of 10,000", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_overlap(plt, overlap: dict, path: Path) -> Path:
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


def plot_xor_surfaces(plt, runs: list[RunResult], path: Path) -> Path:
    xs = np.linspace(-0.25, 1.25, 121)
    mesh = np.array(np.meshgrid(xs, xs)).reshape(2, -1).T
    figure, axes = plt.subplots(1, len(runs), figsize=(3.4 * len(runs) + 1.2, 3.6), squeeze=False, layout="constrained")
    for axis, run in zip(axes[0], runs):
        surface = xor_surface(run.final_weights, mesh).reshape(len(xs), len(xs))
        image = axis.contourf(xs, xs, surface, levels=np.linspace(-1, 1, 21), cmap="coolwarm")
        axis.contour(xs, xs, surface, levels=[0.5], colors="black", linewidths=1.5)
        for (x0, x1), target in zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0, 1, 1, 0]):
            axis.scatter(x0, x1, c="white" if target else "black", edgecolors="black", s=60, zorder=3)
        axis.set(title=f"{label(run)}: acc {run.test['binary_accuracy']:.2f}", xlabel="x0")
    axes[0][0].set_ylabel("x1")
    figure.colorbar(image, ax=axes[0].tolist(), shrink=0.9, label="output (black line: 0.5)")
    figure.suptitle("XOR decision surfaces from the shared initial weights", fontsize=10)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_solve_rate(plt, runs: list[RunResult], path: Path) -> Path:
    figure, axis = plt.subplots(figsize=(7, 3.4))
    for offset, run in enumerate(runs):
        rate = run.solve_rate
        jitter = (offset - (len(runs) - 1) / 2) * 0.12
        axis.scatter(
            np.array(rate["seeds"]) + jitter,
            rate["binary_accuracy"],
            label=f"{label(run)}: {sum(rate['solved'])}/{len(rate['seeds'])} solved",
            color=COLORS.get(run.backend),
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


def plot_ratios(plt, subjects: dict[str, dict[str, float]], path: Path, title: str) -> Path:
    """Per subject (a file, an example), each backend's time as a ratio to the fastest: one bar per backend."""
    names = [name for name in NAMES if any(name in ratios for ratios in subjects.values())]
    figure, axis = plt.subplots(figsize=(9, 0.5 + 0.32 * max(1, len(subjects)) * max(1, len(names))))
    positions = np.arange(len(subjects))
    height = 0.8 / max(1, len(names))
    for offset, name in enumerate(names):
        values = [ratios.get(name, 0.0) for ratios in subjects.values()]
        bars = axis.barh(positions + offset * height, values, height, label=name, color=COLORS.get(name, "gray"))
        axis.bar_label(bars, labels=[f"{value:.2f}x" if value else "" for value in values], fontsize=7, padding=2)
    axis.set_yticks(positions + height * (len(names) - 1) / 2, [Path(subject).name for subject in subjects])
    axis.invert_yaxis()
    axis.axvline(1.0, color="black", linewidth=0.8)
    axis.set(title=title, xlabel="time / the fastest backend's (1.0 = fastest)")
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path
