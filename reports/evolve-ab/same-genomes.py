"""Trains a study's first complete genomes as a search trains its trials (the framework loop, whole batches, the
trial's seed) but for all their epochs, on one backend with one thread; prints one JSON line per genome.

    python reports/evolve-ab/same-genomes.py torch --storage sqlite:///results/evolve.db --study ab2-loop-torch
    python reports/evolve-ab/same-genomes.py jax --storage sqlite:///results/evolve.db --study ab2-loop-torch
"""

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=("torch", "jax", "tensorflow"))
    parser.add_argument("--storage", required=True, help="the study's storage URL")
    parser.add_argument("--study", required=True, help="the study's name")
    parser.add_argument("--count", type=int, default=9, help="how many complete trials, the first ones (default: 9)")
    parser.add_argument(
        "--core", type=int, help="run on this CPU core only (XLA's CPU threads follow the cores a process may use)"
    )
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    os.environ.update(
        {"KERAS_BACKEND": args.backend, "OMP_NUM_THREADS": "1", "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}
    )
    import optuna

    from multibackend.evolve import objective
    from multibackend.evolve.fitness import accuracy, train_genome
    from multibackend.evolve.genome import genome_from_params

    study = optuna.load_study(study_name=args.study, storage=args.storage)
    complete = [trial for trial in study.trials if trial.state.name == "COMPLETE"][: args.count]
    arrays = objective.search_data(train_samples=50_000)
    for trial in complete:
        genome = genome_from_params(trial.params)
        started = time.perf_counter()
        model, trainer = train_genome(genome, arrays, seed=trial.number, fast_path=True, whole_batches=True)
        seconds = time.perf_counter() - started
        row = {
            "trial": trial.number,
            "genome": genome.describe(),
            "params": genome.params,
            "trainer": trainer,
            "seconds": round(seconds, 2),
            "val": accuracy(model, arrays["x_val"], arrays["y_val"]),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
