"""Adversarial inputs for `multibackend parity`: checks that would compare nothing, outputs."""

import pytest

from .conftest import BACKEND, one_line_error


def test_parity_of_one_backend_with_itself_is_refused(capsys):
    assert "at least two distinct" in one_line_error(capsys, "parity", "--backends", f"{BACKEND},{BACKEND}")


@pytest.mark.parametrize(
    "command",
    [['parity', '--out']],
)  # fmt: skip
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    line = one_line_error(capsys, *command, str(blocker))
    assert "is a file, not a folder" in line and blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
