"""Adversarial inputs and faults for `multibackend report` and `compare` (their outcome logic: test_compare.py)."""

import pytest

from multibackend.cli import main

from .conftest import assert_output_file_refused, one_line_error


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
