"""Space version 3: the genes small dense networks need, the fast path where the backend's loop trains a genome,
trials on whole batches, a hopeless trial stopped by the median rule, the size bound in the space, and the front's
hypervolume."""

import numpy as np
import optuna
import pytest

from multibackend.course.networks import dense_param_count
from multibackend.evolve import attributes
from multibackend.evolve import config as evolve_config
from multibackend.evolve import genome as evolve_genome
from multibackend.evolve import objective as evolve_objective
from multibackend.evolve import study as evolve_study
from multibackend.evolve import summary as evolve_summary
from multibackend.evolve.genome import (
    SPACE_VERSION,
    UNITS,
    Genome,
    first_layer_units,
    genome_from_params,
    suggest_genome,
)
from multibackend.evolve.stopping import FIRST_JUDGED_EPOCH, MIN_CURVES, comparable_curves, median_bar
from multibackend.runtime import errors

from ..conftest import BACKEND

PLAIN = Genome((64, 32), "relu", "adamw", 2e-3, 128, 0.1, 3, "cosine", input_dropout=0.1, weight_decay=1e-3)
REGULARIZED = Genome(
    (48,), "elu", "adam", 1e-3, 64, 0.2, 2, batch_norm=True, label_smoothing=0.1, shift=0.1, input_dropout=0.2
)


def test_a_genome_with_every_new_gene_is_a_point_of_the_space_and_comes_back_from_its_params():
    params = REGULARIZED.to_params()
    assert genome_from_params(params) == REGULARIZED
    assert suggest_genome(optuna.trial.FixedTrial(params), max_epochs=3) == REGULARIZED
    described = REGULARIZED.describe()
    assert all(part in described for part in ("input dropout 0.20", "batchnorm", "label smoothing 0.1", "shift 0.1"))
    assert "wd 0.001" in PLAIN.describe() and "wd" not in REGULARIZED.describe()  # weight decay is AdamW's


def test_batch_normalization_counts_its_four_numbers_per_unit_and_the_rest_adds_none():
    assert PLAIN.params == dense_param_count([784, 64, 32, 10])
    assert REGULARIZED.params == dense_param_count([784, 48, 10]) + 4 * 48


def test_max_params_bounds_the_first_layer_in_the_space_itself():
    assert first_layer_units(0) == UNITS
    low, high = first_layer_units(200_000)
    assert (low, high) == (16, 251) and dense_param_count([784, high, 10]) <= 200_000
    assert dense_param_count([784, high + 1, 10]) > 200_000
    space = evolve_genome.search_space(20, 50_000, 200_000)
    assert space["version"] == SPACE_VERSION == 3 and space["first_layer_units"] == [16, 251]
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        assert suggest_genome(trial, 20, max_params=200_000).units[0] <= 251
        study.tell(trial, [0.5, 1.0])


def test_a_study_of_the_previous_space_is_refused_in_one_line(tmp_path, capsys):
    config = evolve_config.EvolveConfig(backend=BACKEND, results_dir=str(tmp_path), population=2, max_epochs=1)
    study = evolve_study.open_study(config)
    settings = dict(study.user_attrs["settings"])
    settings["search_space"] = {**settings["search_space"], "version": 2}
    study.set_user_attr("settings", settings)
    with pytest.raises(errors.UsageError, match=r"created with other settings \(differs in: version\)"):
        evolve_study.open_study(config)


def test_the_median_rule_judges_from_the_second_epoch_once_enough_trials_reached_it():
    others = [[0.80, 0.90, 0.93]] * (MIN_CURVES - 1) + [[0.70, 0.95]]
    assert FIRST_JUDGED_EPOCH == 2
    assert median_bar([0.1], others) is None  # the first epoch is not judged
    assert median_bar([0.1, 0.2], others) == pytest.approx(0.90)  # five curves reached epoch 2
    assert median_bar([0.1, 0.2, 0.3], others) is None  # only four reached epoch 3
    assert median_bar([0.1, 0.2], others[:2]) is None


def test_a_trial_is_judged_only_against_trials_that_planned_as_many_epochs_or_more():
    def finished(epochs: int, curve: list[float]):
        return optuna.trial.create_trial(
            params={"epochs": epochs},
            distributions={"epochs": optuna.distributions.IntDistribution(1, 30)},
            values=[curve[-1], 1000.0],
            user_attrs={attributes.VAL_CURVE: curve},
        )

    # Five 3-epoch genomes, settled by the end of their decay, and five 21-epoch ones still at a high rate.
    short = [finished(3, [0.95, 0.97, 0.975])] * MIN_CURVES
    long = [finished(21, [0.90, 0.93, 0.95, 0.96])] * MIN_CURVES
    no_curve = optuna.trial.create_trial(
        params={"epochs": 21}, distributions={"epochs": optuna.distributions.IntDistribution(1, 30)}, values=[0.5, 9.0]
    )
    trials = short + long + [no_curve]
    assert comparable_curves(trials, 21) == [[0.90, 0.93, 0.95, 0.96]] * MIN_CURVES
    assert median_bar([0.91, 0.94], comparable_curves(trials, 21)) == pytest.approx(0.93)  # goes on
    assert len(comparable_curves(trials, 3)) == 2 * MIN_CURVES  # a short genome meets the long ones too


def test_the_hypervolume_is_the_area_the_front_dominates_up_to_the_reference():
    reference = [0.9, 1000.0]
    assert evolve_summary.hypervolume([], reference) == 0.0
    assert evolve_summary.hypervolume([(0.95, 200.0)], reference) == pytest.approx(0.05 * 800)
    # a second point: more accurate and larger; a third dominated by the first adds nothing; one outside the box
    points = [(0.95, 200.0), (0.99, 600.0), (0.94, 300.0), (0.99, 2000.0), (0.85, 100.0)]
    assert evolve_summary.hypervolume(points, reference) == pytest.approx(0.05 * 400 + 0.09 * 400)


@pytest.mark.backend
def test_the_genes_build_a_model_of_the_counted_size_that_is_a_dense_network_at_test_time():
    import keras

    from multibackend.evolve.fitness import build_genome

    model = build_genome(REGULARIZED, seed=0, train_images=1000)
    assert model.count_params() == REGULARIZED.params
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds[:2] == ["RandomShift", "Dropout"] and "BatchNormalization" in kinds
    assert model.layers[0].max_pixels == 3  # 0.1 of 28 pixels
    images = np.random.default_rng(0).random((8, 784)).astype("float32")
    # At test time shifts and dropout are off: the same images give the same probabilities.
    first, second = (keras.ops.convert_to_numpy(model(images, training=False)) for _ in range(2))
    np.testing.assert_allclose(first, second)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    adamw = build_genome(PLAIN, seed=0, train_images=1000).optimizer
    assert isinstance(adamw, keras.optimizers.AdamW) and adamw.weight_decay == pytest.approx(1e-3)


@pytest.mark.backend
def test_a_trial_trains_with_the_loop_where_the_backends_loop_trains_its_model_and_with_fit_else():
    from multibackend.backends import backend
    from multibackend.evolve.fitness import accuracy, train_genome

    arrays = evolve_objective.search_data(train_samples=2000)
    # Batch normalization, shifts and label smoothing: every backend's loop carries the layers' state as fit does.
    regularized = "loop" if backend(BACKEND).LOOP_TRAINS_LAYER_STATE else "fit"
    assert regularized == "loop"
    for genome, trainer in ((PLAIN, "loop"), (REGULARIZED, regularized)):
        model, used = train_genome(genome, arrays, seed=0, fast_path=True)
        assert used == trainer and accuracy(model, arrays["x_val"], arrays["y_val"]) > 0.4  # chance: 0.1
    assert train_genome(PLAIN, arrays, seed=0)[1] == "fit"  # the final retraining's way


@pytest.mark.backend
@pytest.mark.parametrize("fast_path", [False, True])
def test_a_trial_trains_on_whole_batches_and_its_schedule_decays_over_their_steps(fast_path):
    from multibackend.evolve.fitness import train_genome

    arrays = evolve_objective.search_data(train_samples=1000)
    genome = Genome((16,), "relu", "adam", 1e-2, 96, 0.0, 2, "cosine")  # 1,000 images: 10 whole batches, 40 over
    model, _ = train_genome(genome, arrays, seed=0, fast_path=fast_path, whole_batches=True)
    assert int(model.optimizer.iterations) == 2 * 10
    schedule = model.optimizer._learning_rate
    assert schedule.decay_steps == 20 and float(schedule(20)) == pytest.approx(0.0, abs=1e-9)
    model, _ = train_genome(genome, arrays, seed=0, fast_path=fast_path)  # the final step's way: every image
    assert int(model.optimizer.iterations) == 2 * 11


@pytest.mark.backend
def test_a_hopeless_trial_stops_early_and_is_pruned_with_its_curve(tmp_path):
    config = evolve_config.EvolveConfig(backend=BACKEND, results_dir=str(tmp_path), population=2, max_epochs=4)
    study = evolve_study.open_study(config)
    # Complete trials (the queued baseline first) that planned 4 epochs too and reached 0.99 after two.
    for units in range(16, 16 + MIN_CURVES - 1):
        study.enqueue_trial(Genome((units,), "relu", "adam", 1e-3, 128, 0.0, 4).to_params())
    for _ in range(MIN_CURVES):
        trial = study.ask()
        assert evolve_genome.suggest_genome(trial, config.max_epochs).epochs == 4
        trial.set_user_attr("val_curve", [0.98, 0.99, 0.99, 0.99])
        study.tell(trial, [0.99, 1000.0])
    # sgd at the lowest rate on 1,500 images: far below 0.99 after two of its four epochs
    slow = Genome((32,), "relu", "sgd", 1e-4, 512, 0.0, 4)
    study.enqueue_trial(slow.to_params())
    arrays = evolve_objective.search_data(train_samples=1500)
    study.optimize(evolve_objective.Objective(config, arrays, tmp_path / "models"), n_trials=1)
    stopped = study.get_trials(deepcopy=False)[-1]
    assert stopped.state.name == "PRUNED" and stopped.user_attrs["stopped_at_epoch"] == FIRST_JUDGED_EPOCH
    assert len(stopped.user_attrs["val_curve"]) == FIRST_JUDGED_EPOCH and stopped.user_attrs["trainer"] == "loop"
    assert not (tmp_path / "models" / f"trial-{stopped.number}.keras").exists()


@pytest.mark.backend
def test_random_shift_moves_each_image_by_its_own_whole_pixels_in_training_only(tmp_path):
    import keras

    from multibackend.models import RandomShift

    images = np.zeros((64, 28, 28), "float32")
    images[:, 10, 12] = 1.0  # one lit pixel per image
    layer = RandomShift(2, seed=3)
    moved = keras.ops.convert_to_numpy(layer(images.reshape(64, 784), training=True)).reshape(64, 28, 28)
    places = [tuple(np.argwhere(image == 1.0)[0]) for image in moved]
    assert all(image.sum() == 1.0 for image in moved)  # moved whole, nothing blurred
    assert all(abs(row - 10) <= 2 and abs(column - 12) <= 2 for row, column in places)
    assert len(set(places)) > 5  # each image its own shift
    # Every moved image is its image shifted whole, zeros shifted in: some (dy, dx) within the bound gives it.
    digits = np.random.default_rng(0).random((16, 28, 28)).astype("float32")
    moved = keras.ops.convert_to_numpy(layer(digits.reshape(16, 784), training=True)).reshape(16, 28, 28)
    for digit, result in zip(digits, moved):
        padded = np.pad(digit, 2)
        shifts = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)]
        windows = [padded[2 - dy : 30 - dy, 2 - dx : 30 - dx] for dy, dx in shifts]
        assert any(np.array_equal(result, window) for window in windows)
    edge = np.zeros((1, 28, 28), "float32")
    edge[0, 0, :] = 1.0  # the top row: a shift up loses it, the pixels shifted in are 0
    out = keras.ops.convert_to_numpy(RandomShift(1, seed=0)(edge.reshape(1, 784), training=True))
    assert out.sum() in (28.0, 27.0, 0.0)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(layer(images.reshape(64, 784), training=False)), images.reshape(64, 784)
    )
    model = keras.Sequential([keras.Input((784,)), RandomShift(1), keras.layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "shift.keras")
    assert isinstance(keras.saving.load_model(tmp_path / "shift.keras").layers[0], RandomShift)


def test_the_generation_is_read_under_the_key_that_optunas_nsga2_sampler_writes():
    import optuna

    from multibackend.evolve import attributes
    from multibackend.evolve.genome import generation_of

    assert optuna.samplers.NSGAIISampler._get_generation_key() == attributes.GENERATION
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(population_size=2, seed=0)
    )
    for _ in range(6):
        study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), trial.suggest_float("y", 0, 1)), n_trials=1)
    assert [generation_of(trial, population=100) for trial in study.trials] == [0, 0, 1, 1, 2, 2]
