"""The evolutionary search's report: Pareto front and hypervolume history (Optuna's own plots), best fitness per
generation, the front's genomes."""

from __future__ import annotations

import warnings
from pathlib import Path

from multibackend.evolve.summary import Summary
from multibackend.runtime import templating


def write_evolve_report(study, summary: Summary, out_dir: Path, population: int) -> Path:
    """Writes `evolve-<study>.md` and its plots to `out_dir`; returns the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    from optuna.trial import TrialState

    out_dir.mkdir(parents=True, exist_ok=True)
    name = summary.study
    completed = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    front = sorted(summary.front, key=lambda e: e["params"])
    hypervolume_png = _hypervolume_plot(study, summary, out_dir) if summary.hypervolume else None

    def test_cell(entry: dict | None) -> str:
        return f"{entry['test_accuracy']:.4f}" if entry and "test_accuracy" in entry else "-"

    context = {
        "name": name,
        "summary": summary,
        "front": front,
        "base": summary.baseline,
        "test_cell": test_cell,
        "front_png": _front_plot(study, summary, completed, out_dir).name,
        "generations_png": _generations_plot(name, completed, population, out_dir).name,
        "hypervolume_png": hypervolume_png.name if hypervolume_png else None,
    }
    path = out_dir / f"evolve-{name}.md"
    path.write_text(templating.render("multibackend.evolve", "evolve.md.j2", context))
    return path


def _front_plot(study, summary: Summary, completed: list, out_dir: Path) -> Path:
    """Optuna's Pareto-front plot, zoomed on the front, with the course baseline marked."""
    import matplotlib.pyplot as plt
    import optuna

    front = sorted(summary.front, key=lambda e: e["params"])
    base = summary.baseline
    with warnings.catch_warnings():  # optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axis = optuna.visualization.matplotlib.plot_pareto_front(
            study,
            targets=lambda trial: (trial.values[1], trial.values[0]),
            target_names=["parameters (log scale)", "validation accuracy"],
        )
    figure = axis.figure
    figure.set_size_inches(7.5, 4.5)
    # Zoom on the front and the baseline: far worse trials stay in the study, below the view.
    floor = max(0.0, min(e["validation_accuracy"] for e in [*front, *([base] if base else [])]) - 0.08)
    hidden = sum(1 for t in completed if t.values[0] < floor)
    axis.plot([e["params"] for e in front], [e["validation_accuracy"] for e in front], "-", color="#2a6fdb", lw=1)
    if base:
        axis.scatter(
            [base["params"]],
            [base["validation_accuracy"]],
            marker="*",
            s=220,
            color="#ee4c2c",
            zorder=5,
            label="course baseline (512 relu, rmsprop, batch 128), same budget",
        )
    axis.set(xscale="log", ylim=(floor, 1.0))
    axis.set_title(
        f"{summary.study}: validation accuracy vs parameters ({hidden} trials below {floor:.2f} not shown)",
        fontsize=10,
    )
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    path = out_dir / f"evolve-{summary.study}-front.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _generations_plot(name: str, completed: list, population: int, out_dir: Path) -> Path:
    """The best validation accuracy of each generation, and the best so far."""
    import matplotlib.pyplot as plt

    from multibackend.evolve.genome import generation_of

    best_by_generation: dict[int, float] = {}
    for trial in completed:
        generation = generation_of(trial, population)
        best_by_generation[generation] = max(best_by_generation.get(generation, 0.0), trial.values[0])
    generations = sorted(best_by_generation)
    running, best = [], 0.0
    for generation in generations:
        best = max(best, best_by_generation[generation])
        running.append(best)
    figure, axis = plt.subplots(figsize=(7.5, 3.6))
    axis.plot(generations, [best_by_generation[g] for g in generations], "o-", label="best of the generation")
    axis.plot(generations, running, "s--", label="best so far")
    axis.set(xlabel="generation", ylabel="validation accuracy", title=f"{name}: best fitness per generation")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    path = out_dir / f"evolve-{name}-generations.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _hypervolume_plot(study, summary: Summary, out_dir: Path) -> Path:
    """Optuna's hypervolume history, against the summary's reference point."""
    import matplotlib.pyplot as plt
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        axis = optuna.visualization.matplotlib.plot_hypervolume_history(
            study, reference_point=summary.hypervolume["reference"]
        )
    floor, ceiling = summary.hypervolume["reference"]
    axis.set_title(
        f"{summary.study}: hypervolume (reference: validation {floor:g}, {ceiling:,.0f} parameters)", fontsize=10
    )
    axis.figure.set_size_inches(7.5, 3.6)
    axis.figure.tight_layout()
    path = out_dir / f"evolve-{summary.study}-hypervolume.png"
    axis.figure.savefig(path, dpi=90)
    plt.close(axis.figure)
    return path
