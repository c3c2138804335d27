"""Test setup: fix the Keras backend (from KERAS_BACKEND, default torch) before anything imports Keras."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from multibackend.backend import DEFAULT_BACKEND, select_backend

BACKEND = os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
select_backend(BACKEND, "cpu")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def backend() -> str:
    return BACKEND


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Runs `python -m multibackend ARGS` in a fresh process and captures its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "multibackend", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


@pytest.fixture(scope="session")
def real_results(tmp_path_factory) -> Path:
    """Short real runs of this backend (XOR with 2 seeds, 1 epoch of MNIST) in a results folder."""
    from multibackend.runner import RunConfig, run

    folder = tmp_path_factory.mktemp("results")
    run(RunConfig("xor", backend=BACKEND, device="cpu", seeds=2, out_dir=str(folder), verbose=0))
    run(RunConfig("mnist", backend=BACKEND, device="cpu", epochs=1, out_dir=str(folder), verbose=0))
    return folder
