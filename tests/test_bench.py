"""The native reference loop of this backend and the benchmark's bookkeeping (never timed)."""

import importlib
import json

import pytest

from multibackend import data
from multibackend.bench import goal_lines, training_flops_per_sample
from multibackend.bench_worker import TRAINERS
from multibackend.networks import DEFAULT_SEED, MNIST, initial_weights

from .conftest import BACKEND, run_cli


def test_training_flops_of_the_course_network():
    # forward 2*(784*512 + 512*10), the same again for weight gradients, plus the hidden layer's input gradient
    assert training_flops_per_sample([784, 512, 10]) == 1_636_352


def test_goal_lines_name_the_fastest_keras_path_and_the_session():
    def row(trainer, seconds, time_ratio, memory_ratio):
        return {"backend": "torch", "trainer": trainer, "median_epoch_seconds": seconds,
                "time_ratio_to_native": time_ratio, "best_time_ratio_to_native": time_ratio - 0.05,
                "memory_ratio_to_native": memory_ratio}  # fmt: skip

    rows = [row("keras-fit", 2.0, 2.0, 1.1), row("keras-loop", 1.1, 1.1, 1.1), row("run-mnist", 1.3, 1.3, 1.1),
            row("native", 1.0, 1.0, 1.0)]  # fmt: skip
    (line,) = goal_lines(rows)
    assert line.startswith(
        "torch: fastest Keras path `keras-loop` 1.10x time (best epochs 1.05x), 1.10x memory: within 1.15x"
    )
    assert line.endswith(
        "`nox -s mnist-torch` (run-mnist) 1.30x time (best epochs 1.25x), 1.10x memory: NOT within 1.15x"
    )


def test_native_loop_of_this_backend_learns():
    (x_train, y_train), (x_test, y_test) = data.load_mnist()
    x_train, x_test = data.preprocess_images(x_train[:12_000]), data.preprocess_images(x_test)
    loop = importlib.import_module(f"multibackend.native.{BACKEND}_loop")
    result = loop.train(x_train, y_train[:12_000], x_test, y_test, initial_weights(MNIST.network, DEFAULT_SEED), 1, 128)
    assert len(result["epoch_seconds"]) == 1 and result["loss"][0] < 0.6
    assert result["test_accuracy"] >= 0.9


@pytest.mark.slow
def test_bench_runs_and_its_numbers_are_consistent(tmp_path):
    result = run_cli("bench", "--backends", BACKEND, "--repeats", "1", "--epochs", "1", "--warmup", "0",
                     "--results", str(tmp_path), "--out", str(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads((tmp_path / "bench.json").read_text())
    rows = {row["trainer"]: row for row in payload["rows"]}
    assert list(rows) == list(TRAINERS[BACKEND])
    assert {"native", "keras-fit", "keras-loop", "run-mnist"} <= set(rows)
    native = rows["native"]
    assert native["time_ratio_to_native"] == 1.0 and native["memory_ratio_to_native"] == 1.0
    for row in rows.values():
        assert row["time_ratio_to_native"] == pytest.approx(
            row["median_epoch_seconds"] / native["median_epoch_seconds"]
        )
        assert row["processes"] == 1 and row["processes_on_huge_pages"] in (0, 1)
        assert row["best_epoch_seconds"] == min(row["all_epoch_seconds"]) <= row["median_epoch_seconds"]
        assert row["best_time_ratio_to_native"] == pytest.approx(
            row["best_epoch_seconds"] / native["best_epoch_seconds"]
        )
        assert row["gflops"] == pytest.approx(payload["flops_per_epoch"] / row["median_epoch_seconds"] / 1e9)
        assert 0 < row["share_of_peak"] < 1 and row["test_accuracy"] > 0.9
    markdown = (tmp_path / "bench.md").read_text()
    assert "| keras-fit |" in markdown and f"- {BACKEND}: fastest Keras path" in markdown


def test_huge_page_accounting():
    from multibackend.bench import on_huge_pages
    from multibackend.bench_worker import transparent_huge_page_bytes

    measured = transparent_huge_page_bytes()
    assert measured is None or (isinstance(measured, int) and measured >= 0)
    assert on_huge_pages({"huge_page_bytes": 200 * 2**20}) and not on_huge_pages({"huge_page_bytes": 2**20})
    assert not on_huge_pages({"huge_page_bytes": None}) and not on_huge_pages({})
