"""Adversarial inputs and faults for `multibackend evolve`: seeds, storage, outputs, a real SIGTERM."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import (
    BACKEND,
    SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE,
    assert_output_file_refused,
    assert_seed_refused,
    one_line_error,
)


@pytest.mark.parametrize("seed", SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE)
def test_seeds_outside_the_frameworks_range_are_refused(capsys, seed):
    assert_seed_refused(capsys, seed, "evolve")


@pytest.mark.parametrize("command", [["evolve", "--results"], ["evolve", "--out"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)


@pytest.mark.parametrize("storage", ["sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_study_is_refused(capsys, storage):
    assert "in-memory database" in one_line_error(capsys, "evolve", "--storage", storage)


def worker_processes(parent_marker: str) -> list[int]:
    """Pids of running `multibackend.evolve.worker` processes whose command line holds `parent_marker`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "multibackend.evolve.worker" in text and parent_marker in text:
            found.append(int(cmdline.parent.name))
    return found


@pytest.mark.slow
def test_sigterm_to_evolve_ends_its_helper_workers(tmp_path):
    results = tmp_path / "results"
    command = [sys.executable, "-m", "multibackend", "evolve", "--backend", BACKEND, "--workers", "2",
               "--generations", "4", "--population", "2", "--max-epochs", "1", "--train-samples", "1500",
               "--results", str(results), "--out", str(tmp_path / "reports")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not worker_processes(str(results)) and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    helpers = worker_processes(str(results))
    assert helpers, "the helper worker never started"
    time.sleep(3)  # let it get into its first trial
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143 and stderr.strip().splitlines()[-1] == "multibackend: terminated", stderr
    time.sleep(0.5)
    assert worker_processes(str(results)) == [], "a helper worker trains on after its parent was terminated"
