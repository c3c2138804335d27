"""`compare` tells a passed run, a failed gate, a crash and a timeout apart; child processes end as a group."""

import sys
import time
from pathlib import Path

from multibackend.report.compare import Outcome, classify, planned_runs
from multibackend.results import write_json_atomic
from multibackend.runtime.children import run_child


def planned(path: Path) -> Outcome:
    return Outcome("mnist", "torch", "cpu", "fit", "", path)


def finished(returncode, stderr="", timed_out=False):
    from multibackend.runtime.children import ChildResult

    return ChildResult(returncode, timed_out, 12.0, "", stderr)


def results_file(path: Path, passed: bool) -> None:
    """A minimal valid results file (see schemas/results.schema.json)."""
    payload = {
        "schema_version": 1, "example": "mnist", "backend": "torch", "backend_version": "2", "keras_version": "3",
        "python_version": "3.11", "device": "cpu", "device_name": "cpu", "params": 407_050,
        "expected_params": 407_050, "epochs": 1, "batch_size": 128, "seed": 4, "history": {"loss": [0.3]},
        "test": {"loss": 0.1, "accuracy": 0.97}, "epoch_seconds": [1.0], "median_epoch_seconds": 1.0,
        "first_epoch_seconds": 1.0, "gates": [{"name": "test_accuracy", "passed": passed}], "passed": passed,
        "created": "2026-11-29T00:00:00+00:00",
    }  # fmt: skip
    write_json_atomic(path, payload)


def test_a_fresh_file_that_failed_a_gate_with_exit_1_is_a_failed_gate(tmp_path):
    path = tmp_path / "mnist-torch-cpu.json"
    results_file(path, passed=False)
    assert classify(planned(path), finished(1), None).status == "gate failed"
    results_file(path, passed=True)
    assert classify(planned(path), finished(0), None).status == "passed"


def test_exit_1_without_a_new_file_is_a_crash_and_names_the_error(tmp_path):
    path = tmp_path / "mnist-torch-cpu.json"
    results_file(path, passed=False)  # stale: from an earlier run
    before = path.stat().st_mtime_ns
    outcome = classify(planned(path), finished(1, "Traceback ...\nRuntimeError: CUDA error: out of memory\n"), before)
    assert outcome.status == "crashed" and not outcome.finished
    assert outcome.reason == "exit 1: RuntimeError: CUDA error: out of memory"


def test_a_passing_file_with_a_crash_exit_and_a_timeout_are_not_passes(tmp_path):
    path = tmp_path / "mnist-torch-cpu.json"
    results_file(path, passed=True)
    assert classify(planned(path), finished(3, "multibackend: internal error: X"), None).status == "crashed"
    assert classify(planned(path), finished(None, timed_out=True), None).status == "timed out"
    (tmp_path / "mnist-torch-cpu.json").write_text("{half a file")
    assert classify(planned(path), finished(0), None).status == "crashed"


def test_the_loop_runs_only_when_asked_and_only_for_mnist():
    assert planned_runs(["xor", "mnist"], with_loop=False) == [("xor", "fit"), ("mnist", "fit")]
    assert planned_runs(["xor", "mnist"], with_loop=True) == [("xor", "fit"), ("mnist", "fit"), ("mnist", "loop")]
    assert planned_runs(["xor"], with_loop=True) == [("xor", "fit")]


def test_a_timeout_ends_the_child_and_its_detached_grandchild(tmp_path):
    marker = tmp_path / "grandchild-alive"
    grandchild = f"import time, pathlib\nwhile True:\n    pathlib.Path({str(marker)!r}).touch(); time.sleep(0.1)"
    child = f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {grandchild!r}])\ntime.sleep(60)"
    started = time.perf_counter()
    result = run_child([sys.executable, "-c", child], timeout=2)
    assert result.timed_out and result.returncode is None and time.perf_counter() - started < 10
    time.sleep(0.5)
    marker.unlink(missing_ok=True)
    time.sleep(0.5)
    assert not marker.exists(), "the grandchild still runs"


def test_endless_output_is_kept_as_a_bounded_tail():
    code = "import sys\nfor i in range(400_000): print('line', i)\nprint('the end', file=sys.stderr)"
    result = run_child([sys.executable, "-c", code], timeout=120)
    assert result.returncode == 0 and len(result.stdout) <= 64 * 1024
    assert result.stdout.rstrip().endswith("line 399999") and result.stderr.strip() == "the end"
