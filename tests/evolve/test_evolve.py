"""The evolutionary search: genome mapping, parameter counts, resume, test-set isolation, bad input."""

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

from multibackend.course import data
from multibackend.course.networks import dense_param_count
from multibackend.evolve import config as evolve_config
from multibackend.evolve import objective as evolve_objective
from multibackend.evolve import study as evolve_study
from multibackend.evolve import summary as evolve_summary
from multibackend.evolve.genome import Genome, course_baseline, genome_from_params, suggest_genome
from multibackend.runtime.backend import DEFAULT_BACKEND, installed_backends

from ..conftest import BACKEND, REPO, run_cli
from ..helpers import evolve_command, run_main_listing_frameworks

TINY = ["--generations", "3", "--population", "2", "--max-epochs", "1", "--train-samples", "1500"]


def test_course_network_is_a_point_of_the_space():
    baseline = course_baseline(epochs=3)
    assert baseline.params == 407_050
    assert genome_from_params(baseline.to_params()) == baseline


@pytest.mark.parametrize(
    "units",
    [(16,), (1024, 1024), (300, 100, 50), (64, 32, 16, 128)],
)
def test_genome_parameter_count_follows_the_formula(units):
    genome = Genome(units, "elu", "adam", 3e-3, 64, 0.25, 2)
    assert genome.params == dense_param_count([784, *units, 10])


@pytest.mark.backend
def test_trial_maps_to_the_model_it_describes():
    from multibackend.models import build_dense

    params = {
        "n_layers": 3,
        "units_1": 200,
        "units_2": 50,
        "units_3": 20,
        "activation": "tanh",
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "batch_size": 256,
        "dropout": 0.3,
        "epochs": 2,
        "schedule": "cosine",
        "input_dropout": 0.0,
        "batch_norm": False,
        "weight_decay": 0.004,
        "label_smoothing": 0.0,
        "shift": 0.0,
    }
    genome = suggest_genome(optuna.trial.FixedTrial(params), max_epochs=3)
    assert genome == Genome((200, 50, 20), "tanh", "sgd", 0.01, 256, 0.3, 2, "cosine")
    assert genome_from_params(genome.to_params()) == genome
    model = build_dense(genome.network())
    assert model.count_params() == genome.params == dense_param_count([784, 200, 50, 20, 10])
    dense = [layer for layer in model.layers if layer.__class__.__name__ == "Dense"]
    dropout = [layer for layer in model.layers if layer.__class__.__name__ == "Dropout"]
    assert [layer.units for layer in dense] == [200, 50, 20, 10] and len(dropout) == 3
    assert all(layer.activation.__name__ == "tanh" for layer in dense[:-1])


def test_a_cosine_genome_decays_its_rate_to_zero_over_its_own_steps():
    import keras

    from multibackend.evolve.fitness import learning_rate

    constant = Genome((64,), "relu", "adam", 2e-3, 100, 0.0, 3)
    assert learning_rate(constant, 1050) == 2e-3
    schedule = learning_rate(Genome((64,), "relu", "adam", 2e-3, 100, 0.0, 3, "cosine"), 1050)
    steps = 3 * 11  # 1,050 images in batches of 100: 11 steps an epoch
    assert schedule.decay_steps == steps

    def rate(step: int) -> float:
        return float(keras.ops.convert_to_numpy(schedule(step)))

    assert rate(0) == pytest.approx(2e-3) and rate(steps // 2) == pytest.approx(1e-3, rel=0.05)
    assert rate(steps) == pytest.approx(0.0, abs=1e-9)


def test_search_never_reads_the_test_set(monkeypatch):
    real = data.load_mnist()
    (x_train, y_train), (x_test, y_test) = real
    poisoned = ((x_train, y_train), (np.full_like(x_test, 255), np.full_like(y_test, 99)))
    monkeypatch.setattr(data, "load_mnist", lambda *a, **k: poisoned)
    arrays = evolve_objective.search_data(train_samples=5000)
    assert arrays["x_train"].shape == (5000, 784) and arrays["x_val"].shape == (10_000, 784)
    np.testing.assert_array_equal(arrays["y_val"], y_train[50_000:])
    np.testing.assert_array_equal(arrays["x_val"], data.preprocess_images(x_train[50_000:]))
    assert arrays["y_train"].max() <= 9 and arrays["y_val"].max() <= 9


def test_a_genome_larger_than_max_params_is_pruned_untrained_and_the_course_network_is_not_queued(tmp_path):
    import warnings

    config = evolve_config.EvolveConfig(backend=BACKEND, results_dir=str(tmp_path), population=2, max_params=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Optuna warned of a queued first layer outside the bounded space
        study = evolve_study.open_study(config)
        assert not study.get_trials(deepcopy=False)  # the course network (407,050 parameters) is never trained here
        wide = Genome(
            (120, 100), "relu", "adam", 1e-3, 128, 0.0, 1
        )  # 107,310 parameters, a first layer within the bound
        study.enqueue_trial(wide.to_params())
        models = tmp_path / "models"
        study.optimize(evolve_objective.Objective(config, {}, models), n_trials=1)  # no arrays: nothing may train
        [trial] = study.trials
        assert trial.state.name == "PRUNED" and trial.user_attrs["too_large"] == wide.params == 107_310
        assert not models.exists() or not any(models.iterdir())
        assert study.user_attrs["settings"]["search_space"]["max_params"] == 100_000
        assert len(evolve_study.open_study(config).get_trials(deepcopy=False)) == 1  # a resume queues nothing either


def test_a_summary_without_a_baseline_says_why():
    # A search below the course network's size never trains it: "resume the search to train it" was untrue there.
    assert evolve_summary.baseline_absent(200_000).startswith(
        "the course network (407,050 parameters) is above --max-params"
    )
    assert "resume the search" in evolve_summary.baseline_absent(0)
    assert "resume the search" in evolve_summary.baseline_absent(407_050)


def completed(db) -> list[tuple[int, float]]:
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute(
                "SELECT t.number, v.value FROM trials t JOIN trial_values v ON v.trial_id = t.trial_id "
                "WHERE t.state = 'COMPLETE' AND v.objective = 0 ORDER BY t.number"
            ).fetchall()
    except sqlite3.OperationalError:  # the study's tables are not created yet
        return []


@pytest.mark.slow
def test_killed_search_resumes_without_losing_trials(tmp_path):
    args = evolve_command(tmp_path, BACKEND, *TINY)
    db = tmp_path / "results" / "evolve.db"
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and (not db.exists() or len(completed(db)) < 2):
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = completed(db)
    assert 2 <= len(before) < 6, before
    result = run_main_listing_frameworks(*args[3:])
    assert result.returncode == 0, result.stderr
    assert f"frameworks loaded: ['{BACKEND}']" in result.stdout  # our own code on one backend, as its helpers
    after = completed(db)
    assert len(after) == 6
    assert set(before) <= set(after)  # every finished trial kept, with its value
    study = optuna.load_study(study_name=f"mnist-dense-{BACKEND}", storage=f"sqlite:///{db}")
    trained = [t for t in study.trials if t.state.name == "COMPLETE" and "same_genome_as" not in t.user_attrs]
    assert len({json.dumps(t.params, sort_keys=True) for t in trained}) == len(trained), "a genome trained twice"
    summary = json.loads((tmp_path / "results" / f"evolve-mnist-dense-{BACKEND}.json").read_text())
    assert summary["completed_trials"] == 6 and summary["backends"] == [BACKEND]
    assert summary["baseline"]["params"] == 407_050 and "test_accuracy" in summary["baseline"]
    assert all("test_accuracy" in entry for entry in summary["front"])
    report = (tmp_path / "reports" / f"evolve-mnist-dense-{BACKEND}.md").read_text()
    assert "Pareto front" in report and "baseline" in report
    assert (tmp_path / "reports" / f"evolve-mnist-dense-{BACKEND}-front.png").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--population", "1"], "at least 2"),
        (["--train-samples", "60000"], "at most 50,000"),
        (["--generations", "0"], "positive integer"),
        (["--budget", "-1"], "positive number"),
        (["--storage", "redis://localhost/0"], "unknown scheme"),
    ],
)
def test_bad_settings_are_one_line_errors(tmp_path, extra, message):
    result = run_cli("evolve", "--backend", BACKEND, *extra, "--results", str(tmp_path / "r"))
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        (["--max-epochs", "3"], "epochs"),
        (["--seed", "7"], "seed"),
        (["--population", "4"], "population"),
        (["--train-samples", "2000"], "train_samples"),
    ],
)
def test_a_study_with_other_settings_is_refused_and_kept(tmp_path, changed, named):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    config = evolve_config.EvolveConfig(backend=BACKEND, storage=storage, study="s", max_epochs=2, train_samples=1000)
    evolve_study.open_study(config)
    same = {"--max-epochs": "2", "--train-samples": "1000", "--seed": "0", "--population": "8"}
    same.update(dict(zip(changed[::2], changed[1::2])))
    # The refusal comes before Keras is imported: a Keras that cannot be imported is never reached.
    unimportable = tmp_path / "no-keras" / "keras"
    unimportable.mkdir(parents=True)
    (unimportable / "__init__.py").write_text("raise ImportError('Keras was imported')\n")
    search_path = os.pathsep.join(filter(None, [str(unimportable.parent), os.environ.get("PYTHONPATH")]))
    result = run_cli(
        "evolve",
        "--backend",
        BACKEND,
        "--storage",
        storage,
        "--study",
        "s",
        *[item for pair in same.items() for item in pair],
        "--results",
        str(tmp_path),
        env={"PYTHONPATH": search_path},
    )
    assert result.returncode == 2 and f"other settings (differs in: {named})" in result.stderr, result.stderr
    study = optuna.load_study(study_name="s", storage=storage)
    assert study.user_attrs["settings"]["search_space"]["epochs"] == [1, 2] and len(study.trials) == 1  # the baseline


def test_each_start_draws_its_own_genomes():
    assert len({evolve_study.sampler_seed(0, trials) for trials in range(50)}) == 50
    assert evolve_study.sampler_seed(0, 3) != evolve_study.sampler_seed(1, 3)


def test_final_candidates_are_the_best_smaller_front_network_of_each_size_class():
    from multibackend.evolve.final import final_candidates

    front = [
        {"trial": 1, "params": 50_000, "validation_accuracy": 0.97},
        {"trial": 2, "params": 200_000, "validation_accuracy": 0.985},
        {"trial": 3, "params": 500_000, "validation_accuracy": 0.99},
        {"trial": 4, "params": 120_000, "validation_accuracy": 0.98},
        {"trial": 5, "params": 300_000, "validation_accuracy": 0.987},
        {"trial": 6, "params": 90_000, "validation_accuracy": 0.975},
    ]
    # under 100k, under 200k, under the course's 407,050; then the next by validation accuracy
    assert [entry["trial"] for entry in final_candidates(front, 3)] == [6, 2, 5]
    assert [entry["trial"] for entry in final_candidates(front, 5)] == [6, 2, 5, 4, 1]
    assert [entry["trial"] for entry in final_candidates(front[:4], 2)] == [1, 2]


@pytest.mark.backend
def test_final_step_retrains_the_course_network_and_a_front_network_with_the_same_seeds_and_exports_them(tmp_path):
    from multibackend.evolve.final import final_comparison

    # Every gene, so that the exported script must reproduce each random draw: weights, shifts, dropouts, shuffling.
    small = Genome(
        (32,), "relu", "adamw", 2e-3, 128, 0.2, 1, "cosine", input_dropout=0.1, batch_norm=True,
        weight_decay=1e-3, label_smoothing=0.1, shift=0.05,
    )  # fmt: skip
    front = [{"trial": 7, "params": small.params, "validation_accuracy": 0.9, "genome_params": small.to_params()}]
    networks = tmp_path / "networks"
    final = final_comparison(
        front, 2, 3, print_line=lambda line: None, export_dir=networks, study="s", train_images=2000, baseline_epochs=1
    )
    assert final["seeds"] == [0, 1] and final["train_images"] == 2000 and final["networks_dir"] == "networks"
    assert final["baseline"]["params"] == 407_050 and len(final["baseline"]["test_accuracies"]) == 2
    [candidate] = final["candidates"]
    assert candidate["trial"] == 7 and candidate["params"] == 25_578 and len(candidate["test_accuracies"]) == 2
    assert candidate["beats_baseline"] == (candidate["mean"] > final["baseline"]["mean"])
    assert all(0.5 < accuracy <= 1.0 for accuracy in final["baseline"]["test_accuracies"])
    assert all(0.2 < accuracy <= 1.0 for accuracy in candidate["test_accuracies"])  # chance: 0.1; 1 epoch, 16 steps
    assert candidate["files"] == {"script": "trial-7.py", "model": "trial-7.keras"}
    assert final["baseline"]["files"] == {"script": "course-network.py", "model": "course-network.keras"}
    assert "multibackend" not in "".join(
        line for line in (networks / "trial-7.py").read_text().splitlines() if "import" in line
    )

    # The script alone (keras and NumPy, this backend) trains the network to the final step's accuracy for a seed,
    # and scores the model the final step saved (its first seed's).
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    mnist = tmp_path / "mnist.npz"
    np.savez(mnist, x_train=x_train[:2000], y_train=y_train[:2000], x_test=x_test, y_test=y_test)
    environment = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": ""}
    for extra, expected in (
        (["--seed", "1", "--train-images", "2000"], candidate["test_accuracies"][1]),
        (["--evaluate", str(networks / "trial-7.keras")], candidate["test_accuracies"][0]),
    ):
        result = subprocess.run(
            [sys.executable, "trial-7.py", "--data", str(mnist), *extra],
            cwd=networks, capture_output=True, text=True, env=environment, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == f"test accuracy {expected:.4f} ({BACKEND})"
    if BACKEND != DEFAULT_BACKEND:
        return  # the script's refusals come before its backend does anything: checked under one backend
    for bad in (["--data", str(tmp_path / "absent.npz")], ["--data", str(mnist), "--evaluate", str(mnist)]):
        result = subprocess.run(
            [sys.executable, "trial-7.py", *bad], cwd=networks, capture_output=True, text=True, env=environment, timeout=300
        )  # fmt: skip
        assert result.returncode == 2 and result.stderr.startswith("trial-7.py: error: cannot ")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    # A model saved under torch names torch's optimizer module; the script scores it where torch is not installed.
    other = next((name for name in installed_backends() if name != BACKEND), None)
    if other is None:
        return
    hiding = tmp_path / "one-backend"
    hiding.mkdir()
    (hiding / "sitecustomize.py").write_text(
        f"from multibackend.runtime.backend import hide_other_frameworks\nhide_other_frameworks({other!r})\n"
    )
    result = subprocess.run(
        [sys.executable, "trial-7.py", "--data", str(mnist), "--evaluate", str(networks / "trial-7.keras")],
        cwd=networks, capture_output=True, text=True, timeout=300,
        env={**environment, "KERAS_BACKEND": other, "PYTHONPATH": str(hiding)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == f"test accuracy {candidate['test_accuracies'][0]:.4f} ({other})"


def test_the_full_preset_is_the_course_budget_and_options_override_it():
    from multibackend.cli import build_parser
    from multibackend.cli.evolve import settings_of

    full = settings_of(build_parser().parse_args(["evolve", "--backend", BACKEND, "--preset", "full"]))
    assert (full["max_epochs"], full["train_samples"], full["final_seeds"]) == (20, 50_000, 3)
    assert full["max_params"] == 407_050  # no network larger than the course's is trained
    changed = settings_of(
        build_parser().parse_args(
            ["evolve", "--backend", BACKEND, "--preset", "full", "--budget", "5", "--final-seeds", "0"]
        )
    )
    assert (changed["budget_minutes"], changed["final_seeds"], changed["max_epochs"]) == (5.0, 0, 20)


def test_a_report_without_a_trained_baseline_says_so_and_counts_reused_genomes(tmp_path):
    # The summary of the committed search below 200,000 parameters: its course network is retrained only at the end.
    from multibackend.evolve.report import write_evolve_report
    from multibackend.evolve.summary import Summary

    summary = Summary.from_json(json.loads((REPO / "reports" / "evolve-mnist-200k-fast.json").read_text()))
    assert summary.baseline is None and summary.final["baseline"]["params"] == 407_050
    summary = dataclasses.replace(summary, study="no-baseline", reused_this_run=8)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for entry in summary.front:
        study.add_trial(optuna.trial.create_trial(values=[entry["validation_accuracy"], float(entry["params"])]))
    report = write_evolve_report(study, summary, tmp_path, summary.population).read_text()
    assert "The baseline above" not in report and "| baseline (trial" not in report
    assert "test accuracy 0.9834.\n\nDominating the baseline" in report
    assert "Trials train on 50,000 training images (the first of them that fill whole batches) for at most" in report
    assert "is above --max-params 200,000: the search does not train it" in report
    assert "(256 trials completed in this invocation's 31.7 minutes, jax; 8 of them a genome already trained" in report
    assert "\n\n## Retrained" in report and "| course network | 407,050 | 0.9840, 0.9843, 0.9841 |" in report
    assert "Each network as files to take" not in report  # a summary from before the export names no files
    assert (
        "by `fit` (the framework's generator, seeded as above)" in report and "seeds 0, 1, 2) on all 60,000" in report
    )

    final = dict(summary.final, networks_dir="evolve-x-networks")
    for entry in [final["baseline"], *final["candidates"]]:
        entry["files"] = {"script": f"{entry['label']}.py", "model": f"{entry['label']}.keras"}
    summary = dataclasses.replace(summary, final=final)
    report = write_evolve_report(study, summary, tmp_path, summary.population).read_text()
    assert "trial 385: [`trial 385.py`](evolve-x-networks/trial 385.py)" in report
