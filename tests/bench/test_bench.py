"""The native reference loop of this backend and the benchmark's bookkeeping (never timed)."""

import json

import pytest

from multibackend import schemas
from multibackend.bench import native
from multibackend.bench.harness import goal_lines, measure_in_a_process, paired_time_ratio, training_flops_per_sample
from multibackend.bench.worker import TRAINERS, alternating_trainers
from multibackend.course import data
from multibackend.course.networks import DEFAULT_SEED, MNIST, initial_weights
from multibackend.runtime.errors import UsageError

from ..conftest import BACKEND


def test_training_flops_of_the_course_network():
    # forward 2*(784*512 + 512*10), the same again for weight gradients, plus the hidden layer's input gradient
    assert training_flops_per_sample([784, 512, 10]) == 1_636_352


def test_goal_lines_judge_the_paired_ratio_of_the_fastest_keras_path_and_the_session():
    def row(trainer, paired, memory_ratio, paired_by="round"):
        # Separate-process medians that would say otherwise: the verdict must follow the paired ratio.
        return {
            "backend": "torch",
            "trainer": trainer,
            "paired_time_ratio_to_native": paired,
            "paired_by": paired_by,
            "time_ratio_to_native": paired + 0.2,
            "best_time_ratio_to_native": paired - 0.05,
            "memory_ratio_to_native": memory_ratio,
        }

    rows = [
        row("keras-fit", 2.0, 1.1),
        row("keras-loop", 1.1, 1.1),
        row("run-mnist", 1.3, 1.1, "repeat"),
        row("native", 1.0, 1.0),
    ]
    (line,) = goal_lines(rows)
    assert line.startswith(
        "torch: fastest Keras path `keras-loop` 1.10x time paired by round (medians of separate processes 1.30x, "
        "best epochs 1.05x), 1.10x memory: within 1.15x"
    )
    assert line.endswith(
        "`nox -s mnist-torch` (run-mnist) 1.30x time paired by repeat (medians of separate processes 1.50x, "
        "best epochs 1.25x), 1.10x memory: NOT within 1.15x"
    )
    (line,) = goal_lines([row("keras-loop", 1.1, 1.2), row("native", 1.0, 1.0)])
    assert line.endswith("1.20x memory: NOT within 1.15x")


def test_paired_ratio_compares_epochs_measured_next_to_each_other():
    # Round 2 ran in a slow phase (every trainer 1.5x slower): pairing cancels it, pooled medians do not.
    alternating = [{"epoch_seconds": {"keras-loop": [1.1, 1.65, 1.1], "native": [1.0, 1.5, 1.0]}}]
    assert paired_time_ratio("keras-loop", [], [], alternating) == pytest.approx(1.1)
    # run-mnist pairs whole processes of the same repeat: repeat 1 slow for both, repeat 2 fast for both.
    run_mnist = [{"epoch_seconds": [1.4, 1.6]}, {"epoch_seconds": [1.05, 1.05]}]
    natives = [{"epoch_seconds": [1.5, 1.5]}, {"epoch_seconds": [1.0, 1.0]}]
    assert paired_time_ratio("run-mnist", run_mnist, natives, alternating) == pytest.approx((1.0 + 1.05) / 2)


@pytest.mark.backend
@pytest.mark.slow
def test_native_loop_of_this_backend_learns():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x_train, x_test = data.preprocess_images(x_train[:12_000]), data.preprocess_images(x_test)
    weights = initial_weights(MNIST.network, DEFAULT_SEED)
    result = native.train(BACKEND, x_train, y_train[:12_000], x_test, y_test, weights, 2, 128)
    assert len(result["epoch_seconds"]) == 2 and result["loss"][0] < 0.6
    assert result["loss"][1] < result["loss"][0] and result["test_accuracy"] >= 0.9


# The made-up seconds per epoch of each trainer (native 1.0): so also each one's ratio to native.
STUB_SECONDS_PER_EPOCH = {
    "native": 1.0,
    "keras-fit": 2.0,
    "keras-fit-measured": 2.02,
    "keras-fit-steps32": 1.5,
    "keras-loop": 1.1,
    "run-mnist": 2.1,
}


def stub_worker(backend: str, trainer: str, epochs: int, warmup: int) -> dict:
    """What a bench worker prints, made up: the harness's bookkeeping is tested, not the machine."""
    speed = STUB_SECONDS_PER_EPOCH
    if trainer == "alternating":
        trainers = [name for name in TRAINERS[backend] if name != "run-mnist"]
        return {
            "epoch_seconds": {name: [speed[name] * (1 + i) for i in range(epochs)] for name in trainers},
            "test_accuracy": dict.fromkeys(trainers, 0.97),
        }
    seconds = [speed[trainer] * (1 + i / 10) for i in range(epochs)]
    return {
        "epoch_seconds": seconds,
        "test_accuracy": 0.97,
        "peak_rss_bytes": int(500 * 2**20 * speed[trainer]),
        "huge_page_bytes": 200 * 2**20,
    }


@pytest.mark.parametrize("backend_name", list(TRAINERS))
def test_bench_harness_numbers_are_consistent(tmp_path, monkeypatch, backend_name):
    from multibackend.bench import harness
    from multibackend.bench.command import main

    monkeypatch.setattr(harness, "measure_in_a_process", stub_worker)
    monkeypatch.setattr(harness, "chosen_backends", lambda requested: requested or list(TRAINERS))
    assert (
        main(
            [
                "--backends",
                backend_name,
                "--repeats",
                "2",
                "--epochs",
                "3",
                "--warmup",
                "0",
                "--results",
                str(tmp_path),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    BACKEND = backend_name  # noqa: N806 - the checks below read as for the backend under test
    payload = schemas.validate("bench", json.loads((tmp_path / "bench.json").read_text()))
    rows = {row["trainer"]: row for row in payload["rows"]}
    assert list(rows) == list(TRAINERS[BACKEND])
    assert {"native", "keras-fit", "keras-loop", "run-mnist"} <= set(rows)
    baseline = rows["native"]
    assert baseline["time_ratio_to_native"] == 1.0 and baseline["memory_ratio_to_native"] == 1.0
    assert baseline["paired_time_ratio_to_native"] == 1.0
    for trainer, row in rows.items():
        assert row["time_ratio_to_native"] == pytest.approx(
            row["median_epoch_seconds"] / baseline["median_epoch_seconds"]
        )
        assert row["paired_by"] == ("round" if trainer in alternating_trainers(BACKEND) else "repeat")
        assert row["paired_time_ratio_to_native"] == pytest.approx(STUB_SECONDS_PER_EPOCH[trainer])
        assert row["processes"] == 2 and row["processes_on_huge_pages"] == 2
        assert row["best_epoch_seconds"] == min(row["all_epoch_seconds"]) <= row["median_epoch_seconds"]
        assert row["best_time_ratio_to_native"] == pytest.approx(
            row["best_epoch_seconds"] / baseline["best_epoch_seconds"]
        )
        assert row["gflops"] == pytest.approx(payload["flops_per_epoch"] / row["median_epoch_seconds"] / 1e9)
        assert 0 < row["share_of_peak"] < 1 and row["test_accuracy"] > 0.9
    assert rows["keras-loop"]["memory_ratio_to_native"] == pytest.approx(1.1)
    markdown = (tmp_path / "bench.md").read_text()
    assert "| keras-fit |" in markdown and f"- {BACKEND}: fastest Keras path" in markdown
    assert "x by round |" in markdown and "x by repeat |" in markdown
    assert rows["keras-fit-measured"]["paired_time_ratio_to_fit"] == pytest.approx(1.01)
    assert f"- {BACKEND}: `fit` measured as verify measures it takes 1.010x the time" in markdown


@pytest.mark.backend
@pytest.mark.slow
def test_alternating_worker_times_every_epoch_by_epoch_trainer_round_by_round():
    measured = measure_in_a_process(BACKEND, "alternating", epochs=1, warmup=0)
    assert list(measured["epoch_seconds"]) == list(alternating_trainers(BACKEND))
    assert all(len(seconds) == 1 and min(seconds) > 0 for seconds in measured["epoch_seconds"].values())
    assert all(accuracy > 0.9 for accuracy in measured["test_accuracy"].values())


def test_bench_worker_refuses_an_unknown_trainer_in_one_line():
    with pytest.raises(UsageError, match=r"trainer 'keras-magic' is not available on .*alternating\)$"):
        measure_in_a_process(BACKEND, "keras-magic", epochs=1, warmup=0)


def test_huge_page_accounting(monkeypatch, tmp_path):
    import builtins

    from multibackend.bench import worker
    from multibackend.bench.harness import on_huge_pages

    rollup = tmp_path / "smaps_rollup"
    monkeypatch.setattr(worker, "open", lambda path, *args: builtins.open(rollup, *args), raising=False)
    rollup.write_text("Rss:              612344 kB\nAnonHugePages:    188416 kB\nShared_Hugetlb:        0 kB\n")
    assert worker.transparent_huge_page_bytes() == 188416 * 1024
    rollup.write_text("Rss:              612344 kB\n")  # a kernel without the field
    assert worker.transparent_huge_page_bytes() is None
    rollup.unlink()  # no /proc
    assert worker.transparent_huge_page_bytes() is None
    assert on_huge_pages({"huge_page_bytes": 200 * 2**20}) and not on_huge_pages({"huge_page_bytes": 2**20})
    assert not on_huge_pages({"huge_page_bytes": None}) and not on_huge_pages({})
