"""Adversarial inputs for `multibackend parity`: checks that would compare nothing, outputs."""

import pytest

from .conftest import BACKEND, assert_output_file_refused, one_line_error


def test_parity_of_one_backend_with_itself_is_refused(capsys):
    assert "at least two distinct" in one_line_error(capsys, "parity", "--backends", f"{BACKEND},{BACKEND}")


@pytest.mark.parametrize("command", [["parity", "--out"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)
