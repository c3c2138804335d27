"""Adversarial inputs and faults, command by command: one line and exit 2 before any work, nothing written;
signals end the whole process group; results files readable; checks that would compare nothing refused."""

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multibackend.cli import main
from multibackend.runtime.backend import installed_backends

from .conftest import BACKEND


def one_line_error(capsys, *args: str) -> str:
    code = main(list(args))
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1e3", "nan"])
@pytest.mark.parametrize("command", [["run", "xor"], ["evolve"]])
def test_seeds_outside_the_frameworks_range_are_refused(tmp_path, capsys, command, seed):
    line = one_line_error(capsys, *command, "--seed", seed)
    assert "--seed" in line and "0 to 4294967295" in line


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_infinite_or_missing_numbers_are_refused(tmp_path, capsys, value):
    line = one_line_error(capsys, "verify", str(tmp_path), f"--timeout={value}")
    assert "--timeout" in line and "positive number" in line


@pytest.mark.parametrize(
    "command",
    [["run", "xor", "--out"], ["parity", "--out"], ["report", "--out"], ["compare", "--out"], ["compare", "--results"],
     ["verify", "scripts/course", "--out"], ["evolve", "--results"], ["evolve", "--out"]],
)  # fmt: skip
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    line = one_line_error(capsys, *command, str(blocker))
    assert "is a file, not a folder" in line and blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_output_folder_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    line = one_line_error(capsys, "run", "xor", "--out", str(tmp_path / "a-file" / "results"))
    assert "is not writable" in line


def test_the_benchmark_refuses_an_output_file_too(tmp_path):
    (tmp_path / "a-file").write_text("")
    result = subprocess.run([sys.executable, "-m", "multibackend.bench", "--out", str(tmp_path / "a-file")],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "is a file" in result.stderr


@pytest.mark.parametrize("storage", ["sqlite:///", "sqlite:///:memory:"])
def test_an_in_memory_study_is_refused(capsys, storage):
    assert "in-memory database" in one_line_error(capsys, "evolve", "--storage", storage)


def test_parity_of_one_backend_with_itself_is_refused(capsys):
    assert "at least two distinct" in one_line_error(capsys, "parity", "--backends", f"{BACKEND},{BACKEND}")


def test_results_files_are_readable_as_any_file_the_user_writes(tmp_path):
    from multibackend.results import write_json_atomic

    previous = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_verify_skips_tool_folders_and_reports_a_missing_backend(tmp_path, monkeypatch):
    from multibackend.verify import run as verify_run

    for folder in (".nox/tests/lib", ".venv", ".git", "course"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "script.py").write_text("print('hi')\n")
    assert verify_run.collect_files([str(tmp_path)]) == [tmp_path / "course" / "script.py"]
    missing = next(name for name in ("torch", "tensorflow", "jax") if name != BACKEND)
    monkeypatch.setattr(verify_run, "installed_backends", lambda: [BACKEND])
    payload = verify_run.verify([str(tmp_path / "course")], [BACKEND, missing], timeout=60, out_dir=str(tmp_path / "o"),
                                progress=lambda line: None)  # fmt: skip
    from multibackend import schemas

    schemas.validate("verify", json.loads((tmp_path / "o" / "verify.json").read_text()))
    statuses = {cell["backend"]: cell["status"] for cell in payload["cells"]}
    assert statuses == {BACKEND: "passed", missing: "not installed"} and payload["passed"]
    assert "not installed (pip install" in (tmp_path / "o" / "verify.md").read_text()


def test_verify_refuses_when_no_chosen_backend_is_installed(tmp_path, monkeypatch, capsys):
    from multibackend.verify import run as verify_run

    monkeypatch.setattr(verify_run, "installed_backends", lambda: [])
    (tmp_path / "s.py").write_text("")
    assert "nothing would be verified" in one_line_error(capsys, "verify", str(tmp_path / "s.py"), "--out",
                                                         str(tmp_path / "o"))  # fmt: skip


@pytest.mark.parametrize(("signal_number", "exit_code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                                   (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_a_signal_to_verify_ends_its_script_and_the_script_s_detached_helper(tmp_path, signal_number, exit_code, word):
    marker = tmp_path / "helper-alive"
    helper = f"import time, pathlib\nwhile True:\n    pathlib.Path({str(marker)!r}).touch(); time.sleep(0.1)"
    script = tmp_path / "spawns.py"
    script.write_text("import subprocess, sys, time\n"
                      f"subprocess.Popen([sys.executable, '-c', {helper!r}], start_new_session=True)\ntime.sleep(120)\n")  # fmt: skip
    command = [sys.executable, "-m", "multibackend", "verify", str(script), "--backends", BACKEND,
               "--out", str(tmp_path / "out")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the script's helper never started"
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == exit_code and stderr.strip().splitlines()[-1] == f"multibackend: {word}"
    time.sleep(0.5)
    marker.unlink()
    time.sleep(0.5)
    assert not marker.exists(), "the detached helper still runs"


@pytest.mark.skipif(len(installed_backends()) < 1, reason="needs a backend")
def test_a_timed_out_verify_cell_leaves_nothing_running(tmp_path):
    marker = tmp_path / "helper-alive"
    helper = f"import time, pathlib\nwhile True:\n    pathlib.Path({str(marker)!r}).touch(); time.sleep(0.1)"
    script = tmp_path / "spawns.py"
    script.write_text(f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {helper!r}])\nprint('x' * 10**6)\n"
                      "time.sleep(120)\n")  # fmt: skip
    started = time.perf_counter()
    code = main(["verify", str(script), "--backends", BACKEND, "--timeout", "3", "--out", str(tmp_path / "out")])
    assert code == 1 and time.perf_counter() - started < 30
    time.sleep(0.5)
    marker.unlink(missing_ok=True)
    time.sleep(0.5)
    assert not marker.exists()


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


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("latin1.py", "print('caf\xe9')\n".encode("latin-1"), "not UTF-8 text"),
     ("no-source.ipynb", json.dumps({"cells": [{"cell_type": "code"}], "nbformat": 4}).encode(), "KeyError"),
     ("cells-not-a-list.ipynb", json.dumps({"cells": 3}).encode(), "not a readable notebook"),
     ("cell-not-a-dict.ipynb", json.dumps({"cells": ["print(1)"]}).encode(), "not a readable notebook")],
)  # fmt: skip
def test_course_files_that_python_or_jupyter_would_open_but_are_broken_are_one_line(tmp_path, capsys, name, content,
                                                                                    message):  # fmt: skip
    (tmp_path / name).write_bytes(content)
    line = one_line_error(capsys, "verify", str(tmp_path / name), "--out", str(tmp_path / "out"))
    assert name in line and message in line and not (tmp_path / "out").exists()


@pytest.mark.backend
@pytest.mark.slow
def test_a_report_that_fails_half_way_leaves_the_previous_report_whole(real_results, tmp_path, capsys, monkeypatch):
    from multibackend.report import comparison

    out = tmp_path / "report"
    assert main(["report", str(real_results), "--out", str(out)]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(comparison, "plot_xor_surfaces", disk_full)
    capsys.readouterr()
    line = one_line_error(capsys, "report", str(real_results), "--out", str(out))
    assert "cannot write the report" in line and "No space left on device" in line
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


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
