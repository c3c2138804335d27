"""Adversarial inputs for `multibackend parity`: checks that would compare nothing, outputs."""

import pytest

from ..conftest import BACKEND, assert_output_file_refused, one_line_error

pytestmark = pytest.mark.adversarial


def test_parity_of_one_backend_with_itself_is_refused(capsys):
    assert "at least two distinct" in one_line_error(capsys, "parity", "--backends", f"{BACKEND},{BACKEND}")


@pytest.mark.parametrize("samples", ["100", "60001"])
def test_a_training_subset_smaller_than_a_batch_or_larger_than_mnist_is_refused(tmp_path, capsys, samples):
    out = tmp_path / "out"
    line = one_line_error(capsys, "parity", "--train-samples", samples, "--out", str(out))
    assert "--train-samples must be from 128 (one batch) to 60,000" in line and not out.exists()


@pytest.mark.parametrize("command", [["parity", "--out"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)


def test_a_check_that_failed_on_nan_is_written_as_strict_json_and_shown_as_not_a_number(tmp_path):
    import json

    from multibackend import schemas
    from multibackend.parity.checks import compare_pair, max_by_check
    from multibackend.report import columns
    from multibackend.results import ParityResult, write_json_atomic

    rows = [compare_pair("forward_xor", "torch vs jax", 1e-9), compare_pair("forward_xor", "torch vs tf", float("nan"))]
    assert not rows[1].passed and str(max_by_check(rows)["forward_xor"]) == "nan"  # max() would have said 0.0
    payload = {
        "participants": ["a", "b"],
        "rows": [row.__dict__ for row in rows],
        "max_difference": max_by_check(rows),
        "failed_checks": ["forward_xor"],
        "passed": False,
        "created": "2026-12-02T00:00:00+00:00",
    }
    path = write_json_atomic(tmp_path / "parity.json", payload)

    def no_bare_constants(name):
        raise ValueError(f"bare {name} is not JSON")

    written = json.loads(path.read_text(), parse_constant=no_bare_constants)
    assert written["max_difference"] == {"forward_xor": None} and written["rows"][1]["difference"] is None
    schemas.validate("parity", written)
    worst = columns.parity_worst(ParityResult.from_json(written))
    assert columns.rows(columns.PARITY_COLUMNS, worst) == [
        ["forward_xor", "torch vs tf", "not a number", "1e-06", "FAIL"]
    ]
