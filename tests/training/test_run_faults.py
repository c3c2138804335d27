"""Adversarial inputs and faults for `multibackend run` and the results files it writes."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multibackend.runtime.backend import installed_backends

from ..conftest import (
    SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE,
    assert_output_file_refused,
    assert_seed_refused,
    one_line_error,
)

pytestmark = pytest.mark.adversarial


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
    assert json.loads(kept.read_text()) == {"old": True} and [p.name for p in tmp_path.iterdir()] == [
        "a-file",
        "r.json",
    ]


def test_a_folder_where_the_results_file_goes_is_refused_before_training(tmp_path, backend):
    from ..conftest import run_cli

    (tmp_path / "o" / f"mnist-{backend}-cpu.json").mkdir(parents=True)
    started = time.monotonic()
    result = run_cli("run", "mnist", "--backend", backend, "--device", "cpu", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "is a folder, not a file" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "epoch" not in result.stdout.lower()
    assert time.monotonic() - started < 120  # MNIST's 20 epochs never started


@pytest.mark.parametrize("folder", ["/proc/multibackend-out", "/sys/multibackend-out"])
def test_an_output_folder_the_system_refuses_is_found_before_any_work_even_as_root(capsys, folder):
    line = one_line_error(capsys, "run", "xor", "--out", folder)
    assert "is not writable" in line and not Path(folder).exists()


def test_an_output_folder_that_is_a_link_to_nothing_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "out").symlink_to(tmp_path / "gone")
    line = one_line_error(capsys, "run", "xor", "--out", str(tmp_path / "out"))
    assert "is a link to" in line and "does not exist" in line and not (tmp_path / "gone").exists()


@pytest.mark.parametrize("option", ["--batch-size", "--epochs", "--seeds"])
def test_counts_beyond_what_frameworks_index_are_refused_before_any_work(capsys, option):
    line = one_line_error(capsys, "run", "xor", option, "100000000000000000000")
    assert option in line and "up to 2147483647" in line


def test_a_bad_data_dir_variable_is_named_as_such(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MULTIBACKEND_DATA_DIR", str(tmp_path / "nowhere"))
    line = one_line_error(capsys, "run", "mnist", "--out", str(tmp_path / "out"))
    assert (
        f"MULTIBACKEND_DATA_DIR={tmp_path / 'nowhere'} is not a folder" in line
        and "--data-dir" not in line.split(";")[0]
    )


def test_a_broken_framework_install_is_an_environment_error(tmp_path):
    # An installed torch whose import fails (a broken wheel, a missing shared library): exit 2, one line.
    broken = tmp_path / "site" / "torch"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('libtorch_cpu.so: cannot open shared object file')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    result = subprocess.run(
        [sys.executable, "-m", "multibackend", "run", "xor", "--backend", "torch", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert "keras on the torch backend cannot be imported" in line and "libtorch_cpu.so" in line


@pytest.mark.slow
def test_sigterm_while_jax_trains_exits_143_not_a_crash(tmp_path):
    # Raised from the signal handler in the middle of JAX's work, the exit then crashed in Python's teardown (139).
    if "jax" not in installed_backends():
        pytest.skip("needs jax")
    command = [
        sys.executable,
        "-m",
        "multibackend",
        "run",
        "mnist",
        "--backend",
        "jax",
        "--verbose",
        "2",
        "--out",
        str(tmp_path / "out"),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("Epoch 1/"):
            break
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143 and stderr.strip().splitlines()[-1] == "multibackend: terminated", stderr
