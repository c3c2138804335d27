"""Adversarial inputs and faults for `multibackend report` and `compare` (their outcome logic: test_compare.py)."""

import json
import os
import subprocess
import sys

import pytest

from multibackend.cli import main

from ..conftest import assert_output_file_refused, one_line_error
from ..helpers import minimal_payload

pytestmark = pytest.mark.adversarial


@pytest.mark.parametrize("command", [["report", "--out"], ["compare", "--out"], ["compare", "--results"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)


@pytest.mark.backend
@pytest.mark.slow
def test_a_report_that_fails_half_way_leaves_the_previous_report_whole(real_results, tmp_path, capsys, monkeypatch):
    from multibackend.report import comparison

    out = tmp_path / "report"
    assert main(["report", str(real_results), "--out", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(comparison, "plot_xor_surfaces", disk_full)
    capsys.readouterr()
    line = one_line_error(capsys, "report", str(real_results), "--out", str(out))
    assert "cannot write the report" in line and "No space left on device" in line
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def write_results(folder, name: str, **overrides) -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(json.dumps(minimal_payload(**overrides)))


def test_a_fifo_or_a_file_nested_beyond_reason_is_named_and_the_report_still_written(tmp_path):
    # Run in a child with a time limit: a FIFO read as a file would block forever.
    folder = tmp_path / "results"
    write_results(folder, "xor-torch-cpu.json", backend="torch")
    os.mkfifo(folder / "xor-jax-cpu.json")
    (folder / "xor-tensorflow-cpu.json").write_text("[" * 200_000 + "]" * 200_000)
    (folder / "parity.json").write_text('{"rows": ' + "[" * 200_000 + "]" * 200_000 + "}")
    result = subprocess.run(
        [sys.executable, "-m", "multibackend", "report", str(folder), "--out", str(tmp_path / "report")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "xor-jax-cpu.json: not a regular file" in output
    assert "xor-tensorflow-cpu.json: nested too deeply" in output and "parity.json: nested too deeply" in output
    assert "| xor | torch |" in (tmp_path / "report" / "comparison.md").read_text()


def test_a_created_time_that_is_no_time_is_named_and_never_wins(tmp_path):
    from multibackend.report.collect import collect_results

    first, second = tmp_path / "a", tmp_path / "b"
    write_results(first, "xor-jax-cpu.json", created="2026-11-29T00:00:00+00:00", seed=4)
    write_results(second, "xor-jax-cpu.json", created="zzzz-not-a-date", seed=5)
    warnings = []
    rows = collect_results([first, second], warn=warnings.append)
    assert rows["xor", "jax", "cpu", "fit"].seed == 4
    assert len(warnings) == 1 and "field created: 'zzzz-not-a-date' is not a 'date-time'" in warnings[0]


def test_compare_does_not_reuse_a_file_that_holds_another_backend(tmp_path):
    from multibackend.course.networks import DEFAULT_SEED
    from multibackend.report.compare import reusable

    write_results(tmp_path, "xor-jax-cpu.json", backend="torch", seed=DEFAULT_SEED)
    settings = (200, 1, DEFAULT_SEED, "fit")
    assert not reusable(tmp_path / "xor-jax-cpu.json", "xor", *settings, backend="jax", device="cpu")
    write_results(tmp_path, "xor-torch-cpu.json", backend="torch", seed=DEFAULT_SEED)
    assert reusable(tmp_path / "xor-torch-cpu.json", "xor", *settings, backend="torch", device="cpu")


def test_the_schema_validator_is_compiled_once_per_kind():
    from multibackend import schemas

    assert schemas.validator("results") is schemas.validator("results")
    assert schemas.validator("results") is not schemas.validator("verify")
