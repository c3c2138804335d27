"""`compare` tells a passed run, a failed gate, a crash and a timeout apart; child processes end as a group."""

import sys
import time
from pathlib import Path

from multibackend.report.compare import Outcome, classify, planned_runs
from multibackend.results import write_json_atomic
from multibackend.runtime.children import ChildResult, run_child
from multibackend.runtime.jobs import JobOutcome, JobReply

from ..helpers import minimal_payload


def planned(path: Path) -> Outcome:
    return Outcome("mnist", "torch", "cpu", "fit", "", path)


def finished(returncode, stderr="", timed_out=False, reply: JobReply | None = None) -> JobOutcome:
    """How a run job ended: a reply as the job's child writes it (none after a crash or timeout)."""
    if reply is None and returncode == 0:
        reply = JobReply(ok=True, value={})
    return JobOutcome(reply, ChildResult(returncode, timed_out, 12.0, "", stderr))


def results_file(path: Path, passed: bool) -> None:
    """A minimal valid results file (see schemas/results.schema.json)."""
    payload = minimal_payload(
        example="mnist",
        backend="torch",
        params=407_050,
        expected_params=407_050,
        epochs=1,
        batch_size=128,
        test={"loss": 0.1, "accuracy": 0.97},
        gates=[{"name": "test_accuracy", "passed": passed}],
        passed=passed,
    )
    write_json_atomic(path, payload)


def test_a_fresh_file_that_failed_a_gate_with_exit_1_is_a_failed_gate(tmp_path):
    path = tmp_path / "mnist-torch-cpu.json"
    results_file(path, passed=False)
    assert classify(planned(path), finished(0), None).status == "gate failed"
    results_file(path, passed=True)
    assert classify(planned(path), finished(0), None).status == "passed"


def test_an_error_without_a_new_file_is_a_crash_and_names_the_error(tmp_path):
    path = tmp_path / "mnist-torch-cpu.json"
    results_file(path, passed=False)  # stale: from an earlier run
    before = path.stat().st_mtime_ns
    error = JobReply(ok=False, error="RuntimeError: CUDA error: out of memory")
    outcome = classify(planned(path), finished(1, "Traceback ...\n", reply=error), before)
    assert outcome.status == "crashed" and not outcome.finished
    assert outcome.reason == "RuntimeError: CUDA error: out of memory"
    killed = classify(planned(path), finished(-9, "Traceback ...\nMemoryError\n"), before)  # no reply: the last line
    assert killed.status == "crashed" and killed.reason == "exit -9: MemoryError"
    assert classify(planned(path), finished(0), before).status == "crashed"  # returned, but wrote no new file


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
    assert (
        result.returncode == 0
        and len(result.stdout) <= 64 * 1024 + 100
        and "earlier bytes of output not kept" in result.stdout
    )
    assert result.stdout.rstrip().endswith("line 399999") and result.stderr.strip() == "the end"
