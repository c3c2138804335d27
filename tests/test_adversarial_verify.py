"""Adversarial inputs and faults for `multibackend verify`: numbers, outputs, folders, broken files, signals."""

import json
import signal
import subprocess
import sys
import time

import pytest

from multibackend.cli import main
from multibackend.runtime.backend import installed_backends

from .conftest import BACKEND, assert_output_file_refused, one_line_error


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_infinite_or_missing_numbers_are_refused(tmp_path, capsys, value):
    line = one_line_error(capsys, "verify", str(tmp_path), f"--timeout={value}")
    assert "--timeout" in line and "positive number" in line


@pytest.mark.parametrize("command", [["verify", "scripts/course", "--out"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)


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


@pytest.mark.parametrize(("signal_number", "exit_code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                                   (signal.SIGINT, 130, "interrupted")])  # fmt: skip
def test_a_signal_to_verify_ends_its_scripts_and_their_detached_helpers(tmp_path, signal_number, exit_code, word):
    # Two scripts side by side (--jobs 2), each starting a helper in a session of its own: all four must end.
    markers = [tmp_path / f"helper-{index}-alive" for index in range(2)]
    scripts = []
    for index, marker in enumerate(markers):
        helper = f"import time, pathlib\nwhile True:\n    pathlib.Path({str(marker)!r}).touch(); time.sleep(0.1)"
        scripts.append(tmp_path / f"spawns{index}.py")
        scripts[-1].write_text("import subprocess, sys, time\n"
                               f"subprocess.Popen([sys.executable, '-c', {helper!r}], start_new_session=True)\n"
                               "time.sleep(120)\n")  # fmt: skip
    command = [sys.executable, "-m", "multibackend", "verify", *map(str, scripts), "--backends", BACKEND,
               "--jobs", "2", "--out", str(tmp_path / "out")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not all(marker.exists() for marker in markers) and time.time() < deadline:
        time.sleep(0.2)
    assert all(marker.exists() for marker in markers), "the scripts' helpers never both started"
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == exit_code and stderr.strip().splitlines()[-1] == f"multibackend: {word}"
    time.sleep(0.5)
    for marker in markers:
        marker.unlink()
    time.sleep(0.5)
    assert not any(marker.exists() for marker in markers), "a detached helper still runs"


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
