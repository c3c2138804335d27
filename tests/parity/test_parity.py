"""The parity comparison logic on synthetic arrays, and real multi-backend runs."""

import json

import numpy as np
import pytest

from multibackend import schemas
from multibackend.parity import checks as parity
from multibackend.results import ParityResult
from multibackend.runtime.backend import installed_backends

from ..conftest import run_cli


def worker_output(seed=0, **changes):
    rng = np.random.default_rng(seed)
    arrays = {
        "forward_xor": rng.random((4, 1)),
        "forward_mnist": rng.random((10, 10)),
        "one_update_xor": rng.random(9),
        "one_update_mnist": rng.random(50),
        "xor_trajectory_weights": rng.random((3, 9)),
        "xor_trajectory_accuracy": np.array([1.0, 0.75, 1.0]),
        "mnist_epoch_loss": np.array([0.25]),
        "mnist_test_argmax": np.arange(1000) % 10,
    }
    arrays.update(changes)
    return arrays


def by_check(rows):
    return {row.check: row for row in rows}


def test_identical_outputs_pass_every_check():
    rows = parity.compare_outputs({"a": worker_output(), "b": worker_output()})
    assert rows and all(row.passed for row in rows)
    assert {row.pair for row in rows} == {"a vs b"}


def test_a_weight_perturbed_by_1e_3_is_caught():
    perturbed = worker_output()["one_update_mnist"].copy()
    perturbed[7] += 1e-3
    rows = by_check(parity.compare_outputs({"a": worker_output(), "b": worker_output(one_update_mnist=perturbed)}))
    assert not rows["one_update_mnist"].passed
    assert rows["one_update_mnist"].difference == pytest.approx(1e-3)
    assert rows["forward_xor"].passed


def test_differences_just_inside_and_outside_the_tolerances():
    base = worker_output()
    inside = worker_output(forward_mnist=base["forward_mnist"] + 0.9e-6)
    outside = worker_output(forward_mnist=base["forward_mnist"] + 1.1e-6)
    assert by_check(parity.compare_outputs({"a": base, "b": inside}))["forward_mnist"].passed
    assert not by_check(parity.compare_outputs({"a": base, "b": outside}))["forward_mnist"].passed


def test_a_different_xor_outcome_and_too_many_argmax_changes_fail():
    base = worker_output()
    argmax = base["mnist_test_argmax"].copy()
    argmax[:11] = (argmax[:11] + 1) % 10  # 1.1% of 1000 digits
    other = worker_output(xor_trajectory_accuracy=np.array([1.0, 1.0, 1.0]), mnist_test_argmax=argmax)
    rows = by_check(parity.compare_outputs({"a": base, "b": other}))
    assert not rows["xor_trajectory_accuracy"].passed
    assert not rows["mnist_argmax_disagreement"].passed


def test_relative_loss_tolerance():
    rows = by_check(
        parity.compare_outputs({"a": worker_output(), "b": worker_output(mnist_epoch_loss=np.array([0.2503]))})
    )
    assert not rows["mnist_epoch_loss_relative"].passed  # 1.2e-3 relative


def test_saved_models_are_compared_for_all_ordered_pairs():
    outputs = {tag: {"saved_predictions": np.ones((5, 10)), "saved_accuracy": np.array(0.9)} for tag in "abc"}
    loaded = {}
    for loader in "abc":
        loaded[loader] = {}
        for saver in "abc":
            loaded[loader].update({f"{saver}/predictions": np.ones((5, 10)), f"{saver}/accuracy": np.array(0.9)})
    loaded["c"]["a/predictions"] = np.ones((5, 10)) + 2e-5
    rows = parity.compare_saved_models(outputs, loaded)
    assert len(rows) == 12
    failing = [row.pair for row in rows if not row.passed]
    assert failing == ["saved by a, loaded by c"]


def test_saved_model_accuracy_allows_float32_rounding_but_not_one_digit_more():
    outputs = {tag: {"saved_predictions": np.ones((5, 10)), "saved_accuracy": np.float32(0.9835)} for tag in "ab"}

    def loaded_with(accuracy):
        seen = {}
        for saver in "ab":
            seen[f"{saver}/predictions"] = np.ones((5, 10))
            seen[f"{saver}/accuracy"] = np.float32(accuracy)
        return {loader: seen for loader in "ab"}

    one_ulp = np.nextafter(np.float32(0.9835), np.float32(1.0))
    assert all(row.passed for row in parity.compare_saved_models(outputs, loaded_with(one_ulp)))
    one_more_digit_right = by_check(parity.compare_saved_models(outputs, loaded_with(0.9836)))
    assert not one_more_digit_right["saved_model_accuracy"].passed


def test_fewer_than_two_participants_is_a_usage_error():
    from multibackend.runtime.errors import UsageError

    only = installed_backends()[:1]
    with pytest.raises(UsageError, match="at least two"):
        parity.participants(only, "cpu")
    with pytest.raises(UsageError, match="at least two distinct"):
        parity.participants(only * 2, "cpu")  # torch,torch would compare a backend with itself


def loop_and_fit(**changes):
    arrays = worker_output(
        loop_one_update_mnist=worker_output()["one_update_mnist"],
        loop_mnist_epoch_loss=np.array([0.25]),
        loop_mnist_test_argmax=np.arange(1000) % 10,
    )
    arrays.update(changes)
    return arrays


def test_the_loop_is_compared_with_fit_on_each_backend():
    rows = parity.compare_loop_with_fit({"torch-cpu": loop_and_fit(), "jax-cpu": loop_and_fit()})
    assert {row.pair for row in rows} == {"torch-cpu: loop vs fit", "jax-cpu: loop vs fit"}
    assert len(rows) == 6 and all(row.passed for row in rows)
    update = loop_and_fit()["loop_one_update_mnist"] + 2e-6
    argmax = np.arange(1000) % 10
    argmax[:11] += 1
    failing = parity.compare_loop_with_fit(
        {
            "torch-cpu": loop_and_fit(
                loop_one_update_mnist=update, loop_mnist_epoch_loss=np.array([0.2504]), loop_mnist_test_argmax=argmax
            )
        }
    )
    assert [row.check for row in failing if not row.passed] == [
        "loop_vs_fit_one_update_mnist",
        "loop_vs_fit_epoch_loss_relative",
        "loop_vs_fit_argmax_disagreement",
    ]


@pytest.mark.parametrize(("passed", "code", "verdict"), [(True, 0, "PASSED"), (False, 1, "FAILED: forward_xor")])
def test_the_command_exits_by_the_verdict(monkeypatch, capsys, passed, code, verdict):
    from multibackend.cli import main

    row = {
        "check": "forward_xor",
        "pair": "torch-cpu vs jax-cpu",
        "difference": 0.0,
        "tolerance": 1e-6,
        "passed": passed,
    }
    failed = [] if passed else ["forward_xor"]
    result = ParityResult(["torch-cpu", "jax-cpu"], [row], {"forward_xor": 0.0}, failed, passed, "2026-12-02T00:00:00Z")
    monkeypatch.setattr(parity, "run_parity", lambda *args, **kwargs: result)
    assert main(["parity", "--out", "somewhere"]) == code
    assert verdict in capsys.readouterr().out


@pytest.mark.cross_backend
def test_real_parity_passes_between_backends_and_catches_one_planted_difference(tmp_path):
    # One run: every installed backend, the last one started from weights moved by 1e-3. The pairs of the others
    # must agree in every check; each pair with the planted one must fail, with the checks named.
    backends = installed_backends()
    if len(backends) < 3:
        pytest.skip(f"needs three backends (two that agree, one planted), found {backends}")
    planted = backends[-1]
    result = run_cli(
        "parity",
        "--backends",
        ",".join(backends),
        "--seeds",
        "1",
        "--train-samples",
        "1024",  # an MNIST epoch of 8 updates, not 469: the same checks, about 8 s less per backend here
        "--out",
        str(tmp_path),
        env={"MULTIBACKEND_PARITY_PERTURB": f"{planted}:1e-3"},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: " in result.stdout and "forward_xor" in result.stdout and "one_update_mnist" in result.stdout
    payload = schemas.validate("parity", json.loads((tmp_path / "parity.json").read_text()))
    assert not payload["passed"] and payload["participants"] == [f"{name}-cpu" for name in backends]
    assert payload["train_samples"] == 1024
    agreeing = [row for row in payload["rows"] if f"{planted}-cpu" not in row["pair"]]
    assert agreeing and all(row["passed"] for row in agreeing), [row for row in agreeing if not row["passed"]]
    checks = {row["check"] for row in agreeing}
    assert {"forward_mnist", "one_update_mnist", "xor_trajectory_weights", "saved_model_predictions"} <= checks
    assert "course_exercise:squared_error_is_0.36" in checks
    loop_rows = [row for row in payload["rows"] if row["check"].startswith("loop_vs_fit_")]
    assert {row["pair"] for row in loop_rows} == {f"{name}-cpu: loop vs fit" for name in backends}
    with_planted = {row["check"] for row in payload["rows"] if f"{planted}-cpu" in row["pair"] and not row["passed"]}
    assert {"forward_xor", "one_update_mnist"} <= with_planted
