"""Test setup: fix the Keras backend (from KERAS_BACKEND, default torch) before anything imports Keras."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from multibackend.runtime.backend import DEFAULT_BACKEND, installed_backends, select_backend

BACKEND = os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
select_backend(BACKEND, "cpu")

REPO = Path(__file__).resolve().parents[1]

# Verify's runs in tests whose subject is verify itself (state, downloads, isolation, faults, outputs), not a backend,
# start the backend whose Keras imports quickest: each run is a process, and Keras's import cost here jax 3 s of CPU,
# tensorflow 6 s, torch 7 s (Keras on torch imports torch._dynamo, and jax too when it is installed).
QUICK_BACKEND = next((name for name in ("jax", "tensorflow") if name in installed_backends()), BACKEND)

# Fixtures that train or build Keras models on the backend under test: their users are marked for it.
BACKEND_FIXTURES = {"backend": ("backend",), "real_results": ("backend", "slow"), "mnist_arrays": ("backend",)}


def pytest_collection_modifyitems(items) -> None:
    """Marks tests by the fixtures they use, so that `-m backend` / `-m slow` select them without a mark each."""
    for item in items:
        for fixture in set(getattr(item, "fixturenames", ())) & set(BACKEND_FIXTURES):
            for mark in BACKEND_FIXTURES[fixture]:
                item.add_marker(mark)


@pytest.fixture
def backend() -> str:
    return BACKEND


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600, module: str = "multibackend"
) -> subprocess.CompletedProcess:
    """Runs `python -m MODULE ARGS` (default: the `multibackend` command) in a fresh process, capturing its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def real_results(tmp_path_factory) -> Path:
    """Short real runs of this backend (XOR from the shared weights plus one solve-rate seed, 1 epoch of MNIST)."""
    from multibackend.training.runner import RunConfig, run

    folder = tmp_path_factory.mktemp("results")
    run(RunConfig("xor", backend=BACKEND, device="cpu", seeds=1, out_dir=str(folder), verbose=0))
    run(RunConfig("mnist", backend=BACKEND, device="cpu", epochs=1, out_dir=str(folder), verbose=0))
    return folder


def one_line_error(capsys, *args: str) -> str:
    """Runs the command line in this process and checks it refused with one line on stderr and exit 2."""
    from multibackend.cli import main

    code = main(list(args))
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


def assert_output_file_refused(tmp_path: Path, capsys, *command: str) -> None:
    """`command OPTION FILE`, where an output folder option names a file: refused before any work, the file kept."""
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    line = one_line_error(capsys, *command, str(blocker))
    assert "is a file, not a folder" in line and blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


SEEDS_OUTSIDE_THE_FRAMEWORKS_RANGE = ["-1", "4294967296", "1e3", "nan"]


def assert_seed_refused(capsys, seed: str, *command: str) -> None:
    """`command --seed SEED` with a seed no framework takes: one line naming the range."""
    line = one_line_error(capsys, *command, "--seed", seed)
    assert "--seed" in line and "0 to 4294967295" in line
