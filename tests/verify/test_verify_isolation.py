"""What a verified run cannot do: install by any spelling, see the caller's secrets, touch another run's processes.

Plain scripts and notebooks that never import Keras: each run is a Python process (or a kernel) of about a second.
"""

import json
import os
import sys
import time
from pathlib import Path

import pytest

from multibackend.verify import containment

from ..conftest import QUICK_BACKEND, run_cli
from ..helpers import write_notebook
from .test_verify_truth import PROBE_PACKAGE, installed_packages, probe_wheel

pytestmark = pytest.mark.adversarial


def install_spellings(wheel: Path, logs: Path) -> list[str]:
    """Notebook cells that each start `pip install` another way (the issue's list); each one's output to a log."""
    install = f"install --no-index {wheel}"
    return [
        f"out = !pip {install}\nopen({str(logs / '1.log')!r}, 'w').write('\\n'.join(out))",
        f"!pip --log {logs / 'pip-log.txt'} {install} 2> {logs / '2.log'}",
        f"!/usr/bin/env pip {install} 2> {logs / '3.log'}",
        f"!python -I -m pip {install} 2> {logs / '4.log'}",
        f'!bash -c "pip {install}" 2> {logs / "5.log"}',
        f"!pip \\\n    {install} 2> {logs / '6.log'}",
        f'get_ipython().system("pip {install} 2> {logs / "7.log"}")',
        "import subprocess, sys\n"
        f"r = subprocess.run([sys.executable, '-m', 'pip', *{install.split()!r}], capture_output=True, text=True)\n"
        f"open({str(logs / '8.log')!r}, 'w').write(r.stderr)",
        f"import os\nos.system('pip uninstall -y pip 2> {logs / '9.log'}')",
    ]


def test_pip_refuses_every_spelling_of_an_install_in_a_run(tmp_path):
    wheel = probe_wheel(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    cells = install_spellings(wheel, logs)
    notebook = write_notebook(tmp_path / "installs.ipynb", *cells)
    before = installed_packages(sys.executable)
    result = run_cli(
        "verify", str(notebook), "--backends", QUICK_BACKEND, "--out", str(tmp_path / "o"), "--timeout", "300"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    row = json.loads((tmp_path / "o" / "verify.json").read_text())["cells"][0]
    listed = {item["cell"] for item in row["code_cells_skipped"]}  # recognised and not run at all
    for number in range(1, len(cells) + 1):
        if number in listed:
            continue
        text = (logs / f"{number}.log").read_text()
        assert "refused" in text or "Read-only file system" in text, (number, text)
    assert row["code_cells_ran"] + len(listed) == len(cells)
    assert installed_packages(sys.executable) == before and PROBE_PACKAGE not in before


@pytest.mark.skipif(not containment.available(), reason="no namespaces here: pip's guard is the only stop")
def test_an_install_that_bypasses_pip_s_guard_meets_a_read_only_environment(tmp_path):
    # A script that removes the guard's variable before it starts pip: the run's read-only mounts stop the install.
    wheel = probe_wheel(tmp_path)
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import os, subprocess, sys\n"
        "env = {k: v for k, v in os.environ.items() if k != 'PIP_PYTHON'}\n"
        f"r = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-index', {str(wheel)!r}], env=env,"
        " capture_output=True, text=True)\n"
        "assert r.returncode != 0 and 'Read-only file system' in r.stdout + r.stderr, r.stdout + r.stderr\n"
    )
    before = installed_packages(sys.executable)
    result = run_cli("verify", str(script), "--backends", QUICK_BACKEND, "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed_packages(sys.executable) == before


def test_a_run_gets_an_allow_list_of_the_caller_s_variables(tmp_path):
    seen = tmp_path / "seen.json"
    script = tmp_path / "environment.py"
    script.write_text(f"import json, os\nopen({str(seen)!r}, 'w').write(json.dumps(dict(os.environ)))\n")
    caller = {
        "FAKE_TOKEN": "abc-secret",
        "KAGGLE_KEY": "k-secret",
        "KAGGLE_USERNAME": "student",
        "MULTIBACKEND_SMOKE": "1",
        "KERAS_MAX_STEPS_PER_EPOCH": "1",
        "VIRTUAL_ENV": "/somewhere",
        "OLDPWD": "/elsewhere",
        "LC_ALL": "C.UTF-8",
        "TF_CPP_MIN_LOG_LEVEL": "1",
    }
    result = run_cli(
        "verify",
        str(script),
        "--backends",
        QUICK_BACKEND,
        "--pass-env",
        "KAGGLE_*",
        "--out",
        str(tmp_path / "o"),
        env=caller,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    env = json.loads(seen.read_text())
    for name in ("FAKE_TOKEN", "MULTIBACKEND_SMOKE", "KERAS_MAX_STEPS_PER_EPOCH", "VIRTUAL_ENV", "OLDPWD"):
        assert name not in env, name
    assert env["KAGGLE_KEY"] == "k-secret" and env["KAGGLE_USERNAME"] == "student" and env["LC_ALL"] == "C.UTF-8"
    assert env["KERAS_BACKEND"] == QUICK_BACKEND and env["HOME"].startswith(env["PWD"])
    written = json.loads((tmp_path / "o" / "verify.json").read_text())
    assert written["pass_env"] == ["KAGGLE_*"] and written["contained"] is containment.available()
    assert ("containment: namespaces" in result.stdout) is containment.available()


@pytest.mark.parametrize("name", ["MULTIBACKEND_SMOKE", "BAD-NAME", ""])
def test_pass_env_refuses_verify_s_own_variables_and_bad_names(tmp_path, name):
    (tmp_path / "s.py").write_text("")
    result = run_cli("verify", str(tmp_path / "s.py"), "--pass-env", name, "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "--pass-env" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def processes_with(token: str) -> list[int]:
    """The processes whose command line holds `token`."""
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if token.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def two_runs_side_by_side(folder: Path, token: str) -> tuple[Path, Path]:
    """Script A keeps a background process, in a session of its own, that must live 8 s; script B ends after 3 s (its
    cleanup came for A's, which looked like its leftover)."""
    folder.mkdir()
    a = folder / "a_background.py"
    a.write_text(
        "import os, subprocess, time\n"
        f"started = subprocess.Popen(['sh', '-c', 'setsid sleep {token} & echo $!'], stdout=subprocess.PIPE, text=True)\n"
        "pid = int(started.stdout.readline())\n"
        "time.sleep(8)\n"
        "os.kill(pid, 0)  # still there: nobody else's cleanup ended it\n"
        "print('background alive')\n"
    )
    b = folder / "b_short.py"
    b.write_text("import time\ntime.sleep(3)\n")
    return a, b


def test_one_run_s_end_does_not_touch_another_run_s_processes(tmp_path):
    token = "41.4159"
    two_runs_side_by_side(tmp_path / "course", token)
    result = run_cli(
        "verify", str(tmp_path / "course"), "--backends", QUICK_BACKEND, "--jobs", "2", "--out", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert processes_with(token) == []  # and A's own leftover ended with A


def test_without_namespaces_runs_still_own_their_processes(tmp_path, monkeypatch):
    # Where namespaces cannot be made: a run's processes are found by its session and environment marker. A daemon
    # that starts a session of its own (it leaves the run's group and session) ends with its run too.
    from multibackend.verify import matrix as verify_run

    monkeypatch.setattr(containment, "_unshare_prefix", lambda: None)
    token = "42.4159"
    a, b = two_runs_side_by_side(tmp_path / "course", token)
    options = verify_run.VerifyOptions(timeout=120, jobs=2)
    payload = verify_run.verify(
        [str(a), str(b)], [QUICK_BACKEND], options, out_dir=str(tmp_path / "o"), progress=lambda line: None
    )
    assert [cell["status"] for cell in payload["cells"]] == ["passed", "passed"], payload["cells"]
    assert processes_with(token) == []


FORK_LOOP = (
    "import os, sys, time\n"
    "os.setsid()\n"
    "open(sys.argv[1], 'w').write(str(os.getsid(0)))\n"
    "while True:\n"
    "    if os.fork():\n"
    "        os._exit(0)\n"
    "    with open(sys.argv[2], 'a') as beat:\n"
    "        beat.write('.')\n"
    "    time.sleep(0.005)\n"
)


@pytest.mark.skipif(not containment.available(), reason="no namespaces here (without them a fork loop may escape)")
def test_a_descendant_that_forks_in_a_loop_ends_with_its_run(tmp_path):
    from multibackend.verify import matrix as verify_run

    session_file, beats = tmp_path / "session", tmp_path / "beats"
    script = tmp_path / "forker.py"
    # A session of its own (not the run's), a new process every 5 ms that adds a beat to a file, the run's stdout and
    # stderr kept open: verify must end it all the same, and not wait on its pipes.
    script.write_text(
        "import subprocess, sys, time\n"
        f"subprocess.Popen([sys.executable, '-c', {FORK_LOOP!r}, {str(session_file)!r}, {str(beats)!r}])\n"
        "time.sleep(1)\n"
    )
    started = time.monotonic()
    payload = verify_run.verify(
        [str(script)],
        [QUICK_BACKEND],
        verify_run.VerifyOptions(timeout=60),
        out_dir=str(tmp_path / "o"),
        progress=print,
    )
    seconds = time.monotonic() - started
    before = beats.stat().st_size
    time.sleep(0.5)
    still_beating = beats.stat().st_size > before
    if still_beating:  # never leave one behind, even when the test fails: its pid there is the namespace's
        for pid in processes_with(str(beats)):
            os.killpg(os.getpgid(pid), 9)
    assert payload["cells"][0]["status"] == "passed" and before > 0, payload["cells"]
    assert not still_beating and seconds < 20, seconds
