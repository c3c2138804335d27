"""Where Keras `fit` on the torch backend spends an MNIST epoch, next to the `loop` trainer.

    python scripts/profile_fit_torch.py [--top 25]

Profiles one epoch of each with cProfile (after a warm-up epoch) and splits
the time into torch's compiled kernels (C++ calls: matmuls, autograd, the
RMSprop update) and everything else, which is Python overhead. For `fit` it
also lists the Keras stages a step goes through (cumulative, so they overlap).
Under a profiler everything runs slower; compare the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats

from multibackend.course import data
from multibackend.course.networks import DEFAULT_SEED, MNIST
from multibackend.runtime.backend import select_backend

# (label, path fragment, function name): the stages of one Keras training step.
FIT_STAGES = [
    ("train_step (all of a step)", "backend/torch/trainer.py", "train_step"),
    ("layer calls (forward)", "layers/layer.py", "__call__"),
    ("backward", "torch/_tensor.py", "backward"),
    ("optimizer apply", "optimizers/base_optimizer.py", "apply"),
    ("loss", "trainers/trainer.py", "compute_loss"),
    ("metrics", "trainers/trainer.py", "compute_metrics"),
    ("next batch (data adapter)", "trainers/epoch_iterator.py", "__next__"),
    ("convert_to_tensor", "backend/torch/core.py", "convert_to_tensor"),
]


def split_kernels(stats: pstats.Stats) -> tuple[float, float]:
    """Seconds in torch's C++ calls and the profile's total seconds."""
    kernels = sum(
        row[2] for (path, _, name), row in stats.stats.items() if path == "~" and "torch" in name
    )  # builtins and C methods appear with path "~"
    return kernels, stats.total_tt


def stage_seconds(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Cumulative seconds of each Keras stage in `FIT_STAGES`."""
    seconds = []
    for label, fragment, function in FIT_STAGES:
        total = sum(row[3] for (path, _, name), row in stats.stats.items() if fragment in path and name == function)
        seconds.append((label, total))
    return seconds


def profile(statement, namespace: dict) -> pstats.Stats:
    profiler = cProfile.Profile()
    profiler.runctx(statement, namespace, {})
    return pstats.Stats(profiler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=0, help="also print the N most expensive functions of fit")
    args = parser.parse_args()
    select_backend("torch", "cpu")
    (x_train, y_train), _ = data.load_mnist(allow_download=False)
    x_train = data.preprocess_images(x_train)

    from multibackend.models import build_example
    from multibackend.training.loops import fit_with_loop

    fit_model, loop_model = build_example(MNIST, DEFAULT_SEED), build_example(MNIST, DEFAULT_SEED)
    namespace = {
        "fit_model": fit_model,
        "loop_model": loop_model,
        "x": x_train,
        "y": y_train,
        "fit_with_loop": fit_with_loop,
    }
    fit = "fit_model.fit(x, y, batch_size=128, epochs=1, verbose=0)"
    loop = "fit_with_loop(loop_model, x, y, 1, 128, 0, verbose=0)"
    for warm_up in (fit, loop):
        exec(warm_up, namespace)
    for name, statement in (("fit", fit), ("loop", loop)):
        stats = profile(statement, namespace)
        kernels, total = split_kernels(stats)
        print(
            f"{name:<5} profiled epoch {total:6.2f} s: torch kernels {kernels:5.2f} s ({100 * kernels / total:3.0f}%), "
            f"Python around them {total - kernels:5.2f} s ({100 * (total - kernels) / total:3.0f}%)"
        )
        if name == "fit":
            for label, seconds in stage_seconds(stats):
                print(f"      {label:<28} {seconds:6.2f} s")
            if args.top:
                stats.sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()
