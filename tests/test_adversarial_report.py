"""Adversarial inputs and faults for `multibackend report` and `compare` (their outcome logic: test_compare.py)."""

import pytest

from multibackend.cli import main

from .conftest import one_line_error


@pytest.mark.parametrize(
    "command",
    [['report', '--out'], ['compare', '--out'], ['compare', '--results']],
)  # fmt: skip
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    line = one_line_error(capsys, *command, str(blocker))
    assert "is a file, not a folder" in line and blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


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
