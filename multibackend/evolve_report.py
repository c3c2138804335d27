"""The evolutionary search's report: Pareto front, best fitness per generation, the front's genomes."""

from __future__ import annotations

from pathlib import Path


def write_evolve_report(study, summary: dict, out_dir: Path, population: int) -> Path:
    """Writes `evolve-<study>.md` and its two plots to `out_dir`; returns the Markdown path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    from multibackend.evolve import generation_of

    out_dir.mkdir(parents=True, exist_ok=True)
    name = summary["study"]
    completed = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    front_numbers = {entry["trial"] for entry in summary["front"]}

    figure, axis = plt.subplots(figsize=(7.5, 4.5))
    front = sorted(summary["front"], key=lambda e: e["params"])
    base = summary["baseline"]
    # Zoom on the front and the baseline; far worse trials are counted in the legend instead.
    floor = max(0.0, min(e["validation_accuracy"] for e in [*front, *([base] if base else [])]) - 0.08)
    others = [t for t in completed if t.number not in front_numbers]
    shown = [t for t in others if t.values[0] >= floor]
    axis.scatter([t.values[1] for t in shown], [t.values[0] for t in shown], s=18, color="#bbb",
                 label=f"other trials ({len(others) - len(shown)} below {floor:.2f} not shown)")  # fmt: skip
    axis.plot(
        [e["params"] for e in front],
        [e["validation_accuracy"] for e in front],
        "o-",
        color="#2a6fdb",
        label="Pareto front",
    )
    base = summary["baseline"]
    if base:
        axis.scatter([base["params"]], [base["validation_accuracy"]], marker="*", s=220, color="#ee4c2c", zorder=5,
                     label="course baseline (512 relu, rmsprop, batch 128), same budget")  # fmt: skip
    axis.set(xscale="log", xlabel="parameters (log scale)", ylabel="validation accuracy", ylim=(floor, 1.0),
             title=f"{name}: validation accuracy vs parameters")  # fmt: skip
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    front_png = out_dir / f"evolve-{name}-front.png"
    figure.savefig(front_png, dpi=90)
    plt.close(figure)

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
    generations_png = out_dir / f"evolve-{name}-generations.png"
    figure.savefig(generations_png, dpi=90)
    plt.close(figure)

    def test_cell(entry: dict | None) -> str:
        return f"{entry['test_accuracy']:.4f}" if entry and "test_accuracy" in entry else "-"

    settings = summary["settings"]
    lines = [
        f"# Evolutionary search: {name}", "",
        f"Optuna NSGA-II, population {summary['population']}, {summary['completed_trials']} completed trials, "
        f"backends: {', '.join(summary['backends'])}. Objectives: validation accuracy (max) on the last 10,000 of the "
        f"60,000 training images, and parameters (min). Trials train on {settings['train_samples']:,} training images "
        f"for at most {settings['epochs'][1]} epochs; test accuracy was computed once, after the search, for the front "
        f"and the baseline only. Training and validating the trials took {summary['trial_minutes']:.1f} minutes in all "
        f"(this invocation ran {summary['minutes_this_run']:.1f} minutes).", "",
        "## Front and baseline", "",
        "| trial | generation | validation acc | test acc | params | genome |", "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for entry in front:
        lines.append(f"| {entry['trial']} | {entry['generation']} | {entry['validation_accuracy']:.4f} | {test_cell(entry)} "
                     f"| {entry['params']:,} | {entry['genome']} |")  # fmt: skip
    if base:
        lines.append(f"| baseline (trial {base['trial']}) | {base['generation']} | {base['validation_accuracy']:.4f} "
                     f"| {test_cell(base)} | {base['params']:,} | {base['genome']} |")  # fmt: skip
    reference = summary["course_reference"]
    lines += [
        "",
        f"Course reference (20 epochs on all 60,000 images): {reference['params']:,} parameters, test accuracy "
        f"{reference['test_accuracy']}. The baseline above is the same network under the search's budget.",
        "",
        "Dominating the baseline (at least as accurate on validation with fewer parameters, or more accurate with no "
        "more): "
        + (", ".join(f"trial {n}" for n in summary["dominating_baseline"]) or "none found in this search")
        + ".",
        "",
        f"![Pareto front]({front_png.name})",
        "",
        f"![Best fitness per generation]({generations_png.name})",
        "",
    ]
    path = out_dir / f"evolve-{name}.md"
    path.write_text("\n".join(lines))
    return path
