"""Real training runs through the runner, checked against the course's numbers and the results contract."""

import pytest

from multibackend.course.networks import DEFAULT_SEED
from multibackend.results import read_results
from multibackend.training.runner import summary

pytestmark = [pytest.mark.backend, pytest.mark.slow]


def test_xor_from_the_shared_weights_solves_xor(real_results, backend):
    payload = read_results(real_results / f"xor-{backend}-cpu.json", example="xor")
    assert payload.seed == DEFAULT_SEED
    assert payload.params == 9
    assert len(payload.history["loss"]) == 200 and payload.steps_per_epoch == 4
    assert payload.test["binary_accuracy"] == 1.0
    assert payload.history["loss"][-1] < payload.history["loss"][0]
    assert payload.passed is True
    rate = payload.solve_rate
    assert rate["seeds"] == [0] and rate["rate"] == float(rate["solved"][0])
    assert len(payload.final_weights) == 4
    assert "solve rate  " in summary(payload)


def test_one_epoch_of_mnist_clearly_learns(real_results, backend):
    stored = read_results(real_results / f"mnist-{backend}-cpu.json", example="mnist")
    assert stored.params == stored.expected_params == 407_050
    assert stored.backend == backend and stored.device == "cpu"
    assert stored.weight_device.lower().startswith(("cpu", "/job", "tfrt_cpu"))
    assert stored.test["accuracy"] >= 0.95
    assert stored.steps_per_epoch == 469 and len(stored.epoch_seconds) == 1
    assert stored.peak_rss_bytes > 0 and stored.steps_per_second > 0
    gate_names = [gate["name"] for gate in stored.gates]
    assert gate_names == ["params", "test_accuracy"]
    assert stored.gates[1]["threshold"] == 0.95 and stored.passed is True
    wrong = stored.misclassified
    assert len(wrong) == round((1 - stored.test["accuracy"]) * 10000)
    assert all(predicted != actual for _, predicted, actual in wrong)
