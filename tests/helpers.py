"""Helpers shared by test modules: files in the shapes the commands read."""

import signal
import subprocess
import sys
from pathlib import Path

import nbformat

from multibackend.results import REQUIRED_FIELDS, SCHEMA_VERSION

# Digests (multibackend.course.data.array_digest) of the canonical MNIST arrays.
ARRAY_DIGESTS = {
    "x_train": "157fe16da1dbced4a1376f4be5df2d665d51d11177dcaf7aa4848b1ff033343f",
    "y_train": "e6a049a9876d2010dddfc2322bb8cad03f5934de9a0b5012c7251eca5b5a7201",
    "x_test": "fbf9701b11f5659e6366884b0bbf01ea129fb049e3239251eddb226ada72239e",
    "y_test": "6a90c4ebf8538b9b76438e5dddb0f5afc42d636e8e259d894485f9314cdad47d",
}


def write_notebook(path: Path, *sources: str) -> Path:
    """A notebook of code cells with `sources`, without outputs, with a Python 3 kernel spec."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in sources])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def minimal_payload(**overrides):
    """The smallest results file the contract accepts (schemas/results.schema.json)."""
    payload = {
        "schema_version": SCHEMA_VERSION,
        "example": "xor",
        "backend": "jax",
        "backend_version": "0.10.2",
        "keras_version": "3.15.1",
        "python_version": "3.11.7",
        "device": "cpu",
        "device_name": "cpu",
        "params": 9,
        "expected_params": 9,
        "epochs": 200,
        "batch_size": 1,
        "seed": 4,
        "history": {"loss": [1.0]},
        "test": {"loss": 1.0, "binary_accuracy": 1.0},
        "epoch_seconds": [0.01],
        "median_epoch_seconds": 0.01,
        "first_epoch_seconds": 0.3,
        "gates": [],
        "passed": True,
        "created": "2026-11-29T00:00:00+00:00",
    }
    assert set(REQUIRED_FIELDS) <= set(payload)
    payload.update(overrides)
    return payload


def as_a_foreground_job() -> None:
    """`preexec_fn` for a command that a test interrupts as Ctrl-C would: SIGINT back to its default.

    A shell without job control starts background commands with SIGINT ignored, and Python then never raises
    KeyboardInterrupt: a test run launched that way saw the command finish its work after the "Ctrl-C".
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def evolve_command(tmp_path: Path, backend: str, *settings: str) -> list[str]:
    """`multibackend evolve` on `backend` writing under `tmp_path` (results/, reports/), small unless `settings`
    say otherwise (a later option overrides an earlier one)."""
    return [
        sys.executable,
        "-m",
        "multibackend",
        "evolve",
        "--backend",
        backend,
        "--max-epochs",
        "2",
        "--train-samples",
        "10000",
        "--results",
        str(tmp_path / "results"),
        "--out",
        str(tmp_path / "reports"),
        *settings,
    ]


# The command line as `multibackend` runs it, then which frameworks the process loaded.
MAIN_THEN_FRAMEWORKS = (
    "import sys\n"
    "from multibackend.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('frameworks loaded:', sorted(m for m in ('torch', 'tensorflow', 'jax') if m in sys.modules))\n"
    "sys.exit(code)\n"
)


def run_main_listing_frameworks(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Runs `multibackend ARGS` in a fresh process whose last line of output lists the frameworks it loaded."""
    return subprocess.run(
        [sys.executable, "-c", MAIN_THEN_FRAMEWORKS, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
