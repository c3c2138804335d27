"""Adversarial inputs and faults for `multibackend run` and the results files it writes."""

import json
import os
import stat
from pathlib import Path

import pytest

from .conftest import (
    SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE,
    assert_output_file_refused,
    assert_seed_refused,
    one_line_error,
)


@pytest.mark.parametrize("seed", SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE)
def test_seeds_outside_the_frameworks_range_are_refused(capsys, seed):
    assert_seed_refused(capsys, seed, "run", "xor")


@pytest.mark.parametrize("command", [["run", "xor", "--out"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)


def test_an_output_folder_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    line = one_line_error(capsys, "run", "xor", "--out", str(tmp_path / "a-file" / "results"))
    assert "is not writable" in line


def test_results_files_are_readable_as_any_file_the_user_writes(tmp_path):
    from multibackend.results import write_json_atomic

    previous = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_a_results_file_that_cannot_be_written_is_one_error_and_keeps_the_old_file(tmp_path):
    from multibackend.results import write_json_atomic
    from multibackend.runtime.errors import OutputError

    (tmp_path / "a-file").write_text("")
    with pytest.raises(OutputError, match="cannot write .*a-file.r.json: (File exists|Not a directory)"):
        write_json_atomic(tmp_path / "a-file" / "r.json", {"a": 1})
    kept = write_json_atomic(tmp_path / "r.json", {"old": True})
    with pytest.raises(TypeError):
        write_json_atomic(kept, {"unserialisable": object()})
    assert json.loads(kept.read_text()) == {"old": True} and [p.name for p in tmp_path.iterdir()] == ["a-file",
                                                                                                     "r.json"]  # fmt: skip


@pytest.mark.parametrize("folder", ["/proc/multibackend-out", "/sys/multibackend-out"])
def test_an_output_folder_the_system_refuses_is_found_before_any_work_even_as_root(capsys, folder):
    line = one_line_error(capsys, "run", "xor", "--out", folder)
    assert "is not writable" in line and not Path(folder).exists()
