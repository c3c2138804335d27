"""Adversarial inputs and faults for `multibackend verify`: numbers, outputs, folders, broken files, signals."""

import json
import os
import signal
import subprocess
import sys
import time
import types
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from multibackend.cli import main
from multibackend.runtime.backend import installed_backends

from ..conftest import QUICK_BACKEND, assert_output_file_refused, one_line_error, run_cli
from ..helpers import as_a_foreground_job, write_notebook

pytestmark = pytest.mark.adversarial


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999"])
def test_infinite_or_missing_numbers_are_refused(tmp_path, capsys, value):
    line = one_line_error(capsys, "verify", str(tmp_path), f"--timeout={value}")
    assert "--timeout" in line and "positive number" in line


@pytest.mark.parametrize("command", [["verify", "scripts/course", "--out"]])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path, capsys, command):
    assert_output_file_refused(tmp_path, capsys, *command)


def test_verify_skips_tool_folders_and_reports_a_missing_backend(tmp_path, monkeypatch):
    from multibackend.verify import matrix as verify_run

    for folder in (".nox/tests/lib", ".venv", ".git", "course"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "script.py").write_text("print('hi')\n")
    assert verify_run.collect_files([str(tmp_path)]) == [tmp_path / "course" / "script.py"]
    missing = next(name for name in ("torch", "tensorflow", "jax") if name != QUICK_BACKEND)
    monkeypatch.setattr(verify_run, "installed_backends", lambda: [QUICK_BACKEND])
    options = verify_run.VerifyOptions(timeout=60)
    payload = verify_run.verify(
        [str(tmp_path / "course")],
        [QUICK_BACKEND, missing],
        options,
        out_dir=str(tmp_path / "o"),
        progress=lambda line: None,
    )
    from multibackend import schemas

    schemas.validate("verify", json.loads((tmp_path / "o" / "verify.json").read_text()))
    statuses = {cell["backend"]: cell["status"] for cell in payload["cells"]}
    assert statuses == {QUICK_BACKEND: "passed", missing: "not installed"} and payload["passed"]
    assert "not installed (pip install" in (tmp_path / "o" / "verify.md").read_text()


def test_verify_refuses_when_no_chosen_backend_is_installed(tmp_path, monkeypatch, capsys):
    from multibackend.verify import matrix as verify_run

    monkeypatch.setattr(verify_run, "installed_backends", lambda: [])
    (tmp_path / "s.py").write_text("")
    assert "nothing would be verified" in one_line_error(
        capsys, "verify", str(tmp_path / "s.py"), "--out", str(tmp_path / "o")
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("latin1.py", "print('caf\xe9')\n".encode("latin-1"), "not UTF-8 text"),
        ("no-source.ipynb", json.dumps({"cells": [{"cell_type": "code"}], "nbformat": 4}).encode(), "KeyError"),
        ("cells-not-a-list.ipynb", json.dumps({"cells": 3}).encode(), "not a readable notebook"),
        ("cell-not-a-dict.ipynb", json.dumps({"cells": ["print(1)"]}).encode(), "not a readable notebook"),
    ],
)
def test_course_files_that_python_or_jupyter_would_open_but_are_broken_are_one_line(
    tmp_path, capsys, name, content, message
):
    (tmp_path / name).write_bytes(content)
    line = one_line_error(capsys, "verify", str(tmp_path / name), "--out", str(tmp_path / "out"))
    assert name in line and message in line and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("signal_number", "exit_code", "word"),
    [
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGINT, 130, "interrupted"),
        (signal.SIGHUP, 129, "hung up (SIGHUP)"),
    ],
)
def test_a_signal_to_verify_ends_its_scripts_and_their_detached_helpers(tmp_path, signal_number, exit_code, word):
    # Two scripts side by side (--jobs 2), each starting a helper in a session of its own: all four must end.
    markers = [tmp_path / f"helper-{index}-alive" for index in range(2)]
    scripts = []
    for index, marker in enumerate(markers):
        helper = f"import time, pathlib\nwhile True:\n    pathlib.Path({str(marker)!r}).touch(); time.sleep(0.1)"
        scripts.append(tmp_path / f"spawns{index}.py")
        scripts[-1].write_text(
            "import subprocess, sys, time\n"
            f"subprocess.Popen([sys.executable, '-c', {helper!r}], start_new_session=True)\n"
            "time.sleep(120)\n"
        )
    command = [
        sys.executable,
        "-m",
        "multibackend",
        "verify",
        *map(str, scripts),
        "--backends",
        QUICK_BACKEND,
        "--jobs",
        "2",
        "--out",
        str(tmp_path / "out"),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=as_a_foreground_job
    )
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
    script.write_text(
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {helper!r}])\nprint('x' * 10**6)\n"
        "time.sleep(120)\n"
    )
    started = time.perf_counter()
    code = main(["verify", str(script), "--backends", QUICK_BACKEND, "--timeout", "3", "--out", str(tmp_path / "out")])
    assert code == 1 and time.perf_counter() - started < 30
    time.sleep(0.5)
    marker.unlink(missing_ok=True)
    time.sleep(0.5)
    assert not marker.exists()


def test_a_child_that_prints_without_end_costs_no_disk():
    # The child may write at most 1 MiB to any file; it prints 50 MiB. Written to a temporary file, its output would
    # hit that limit (SIGXFSZ); read from a pipe, only the last 64 KiB are kept, in memory.
    from multibackend.runtime.children import TAIL_BYTES, run_child

    code = (
        "import resource, sys\nresource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "for _ in range(800):\n    sys.stdout.write('x' * 65536)\nprint('the end')"
    )
    result = run_child([sys.executable, "-c", code], timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[") and result.stdout.rstrip().endswith("the end")
    dropped = int(result.stdout[1:].split(" ", 1)[0])
    assert dropped > 50_000_000 and len(result.stdout) < TAIL_BYTES + 100


def test_normalizing_output_takes_linear_time_in_a_run_of_digits():
    # A progress-bar pattern used to start at every digit of a run: 16,000 digits took 21 s, so a million would take
    # about a day. Linear, a million take well under a second. A ratio of two timings failed on a loaded CI machine;
    # a limit hundreds of times the linear time and thousands of times below the quadratic one cannot.
    from multibackend.runtime.children import run_child

    code = (
        "from multibackend.verify.outputs import normalize\n"
        "text = normalize('1' * 1_000_000 + 'x\\n')\n"
        "print(len(text), text[-3:])"
    )
    result = run_child([sys.executable, "-c", code], timeout=120)
    assert not result.timed_out, "normalizing a run of a million digits took over 120 s"
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1000001", "11x"]


def test_a_fifo_given_as_a_script_is_refused_without_reading_it(tmp_path):
    fifo = tmp_path / "pipe.py"
    os.mkfifo(fifo)
    result = subprocess.run(
        [sys.executable, "-m", "multibackend", "verify", str(fifo), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "not a regular file" in result.stderr.strip()
    assert len(result.stderr.strip().splitlines()) == 1


def test_junit_xml_that_would_replace_verify_json_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "verify.json").write_text("{}")
    (tmp_path / "s.py").write_text("print(1)\n")
    line = one_line_error(
        capsys, "verify", str(tmp_path / "s.py"), "--out", str(out), "--junit-xml", str(out / "verify.json")
    )
    assert "would overwrite" in line and (out / "verify.json").read_text() == "{}"


@pytest.mark.parametrize("target", ["merged", "source"])
def test_a_merge_whose_junit_xml_would_replace_a_verify_json_is_refused(tmp_path, target):
    from .test_verify_shards import shard_payload

    one, two = shard_payload(tmp_path, "one", 1, 2), shard_payload(tmp_path, "two", 2, 2)
    junit_xml = tmp_path / "m" / "verify.json" if target == "merged" else Path(one) / "verify.json"
    before = (Path(one) / "verify.json").read_text()
    result = run_cli("verify", "merge", one, two, "--out", str(tmp_path / "m"), "--junit-xml", str(junit_xml))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "m").exists() and (Path(one) / "verify.json").read_text() == before


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_an_output_inside_out_that_cannot_be_written_is_refused_before_any_run(tmp_path, kind):
    out = tmp_path / "out"
    out.mkdir()
    name = "verify.md" if kind == "fifo" else "verify.json"
    os.mkfifo(out / name) if kind == "fifo" else (out / name).mkdir()
    (tmp_path / "s.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n")
    result = run_cli("verify", str(tmp_path / "s.py"), "--out", str(out), timeout=60)
    assert result.returncode == 2 and name in result.stderr and not (tmp_path / "ran").exists(), result.stderr


def test_a_full_disk_keeps_the_previous_results_whole(tmp_path):
    # A real file system that fills: a 64 KiB tmpfs, mounted in a mount namespace of the command's own.
    from multibackend.verify import containment

    from .test_verify_shards import shard_payload

    if not containment.available():
        pytest.skip("no mount namespaces here to mount a small file system")
    one, two = shard_payload(tmp_path, "one", 1, 2), shard_payload(tmp_path, "two", 2, 2)
    out = tmp_path / "out"
    out.mkdir()
    merge = f"{sys.executable} -m multibackend verify merge {one} {two} --out {out}"
    script = (
        f"mount -t tmpfs -o size=64k tmpfs {out} && {merge} >/dev/null && cat {out}/verify.json > {tmp_path}/before && "
        f"(dd if=/dev/zero of={out}/filler bs=1k count=64 2>/dev/null; true) && {merge}; "
        f"echo $? > {tmp_path}/status; ls -a {out} > {tmp_path}/listing; cat {out}/verify.json > {tmp_path}/after"
    )
    finished = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (tmp_path / "status").read_text().strip() == "2", finished.stderr
    assert "No space left on device; the previous files are kept" in finished.stderr
    assert (tmp_path / "after").read_text() == (tmp_path / "before").read_text()
    assert sorted((tmp_path / "listing").read_text().split()) == [
        ".",
        "..",
        "filler",
        "verify.html",
        "verify.json",
        "verify.md",
    ]


def test_a_shard_holding_infinity_is_refused(tmp_path):
    from .test_verify_shards import shard_payload

    one, two = shard_payload(tmp_path, "one", 1, 2), shard_payload(tmp_path, "two", 2, 2)
    path = Path(one) / "verify.json"
    path.write_text(path.read_text().replace('"seconds": 1.0', '"seconds": Infinity'))
    result = run_cli("verify", "merge", one, two, "--out", str(tmp_path / "m"))
    assert result.returncode == 2 and "Infinity is not a JSON number" in result.stderr, result.stderr


def test_a_course_file_deleted_by_an_earlier_run_fails_that_run_alone(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "a_deletes.py").write_text(f"import os\nos.remove({str(course / 'b_deleted.ipynb')!r})\n")
    write_notebook(course / "b_deleted.ipynb", "print(1)")
    result = run_cli("verify", str(course), "--backends", QUICK_BACKEND, "--jobs", "1", "--out", str(tmp_path / "o"))
    assert result.returncode == 1, result.stdout + result.stderr
    statuses = {cell["file"].rsplit("/", 1)[1]: cell["status"] for cell in json_cells(tmp_path / "o")}
    assert statuses == {"a_deletes.py": "passed", "b_deleted.ipynb": "failed"}


def json_cells(out: Path) -> list[dict]:
    return json.loads((out / "verify.json").read_text())["cells"]


@pytest.mark.parametrize("where", ["metadata", "source"])
def test_a_notebook_cell_its_schema_refuses_is_one_line(tmp_path, capsys, where):
    cell = {"cell_type": "code", "metadata": {}, "source": "print(1)", "outputs": [], "execution_count": None}
    cell |= {"metadata": 5} if where == "metadata" else {"source": ["print(1)", 3]}
    path = tmp_path / "broken.ipynb"
    path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    line = one_line_error(capsys, "verify", str(path), "--out", str(tmp_path / "o"))
    assert "nbformat's schema" in line and not (tmp_path / "o").exists()


def test_an_over_long_name_anywhere_is_one_line_and_exit_2(tmp_path, capsys):
    long = str(tmp_path / ("x" * 300))
    (tmp_path / "s.py").write_text("")
    for args in (
        ["verify", long],
        ["verify", str(tmp_path / "s.py"), "--out", long],
        ["verify", str(tmp_path / "s.py"), "--junit-xml", long + "/j.xml"],
        ["verify", "merge", long],
        ["run", "xor", "--out", long],
        ["report", "--out", long],
        ["evolve", "--results", long],
    ):
        assert "longer than" in one_line_error(capsys, *args), args


def test_junit_and_markdown_stay_well_formed_whatever_an_error_or_a_file_name_holds(tmp_path):
    from multibackend.verify import junit
    from multibackend.verify.render import markdown_matrix

    name = "odd\nname | with a pipe.py"
    cells = [
        {
            "file": name,
            "backend": "torch",
            "status": "failed",
            "seconds": 1.0,
            "last_line": "\x1b[1macc\x07 0.9",
            "error": "ValueError: \x1b[31mred\x1b[0m bell\x07 form feed\x0c nul\x00 end",
        }
    ]
    payload = {
        "backends": ["torch"],
        "files": [name],
        "cells": cells,
        "warnings": [],
        "passed": False,
        "created": "2026-12-02T08:00:00+00:00",
    }
    document = junit.document(payload)
    path = tmp_path / "j.xml"
    document.write(path, encoding="utf-8", xml_declaration=True)
    [case] = ElementTree.parse(path).getroot().iter("testcase")  # expat refuses what XML 1.0 forbids
    assert case.find("failure").get("message") == "ValueError: red bell form feed nul end"
    rows = [line for line in markdown_matrix(payload).splitlines() if "odd" in line and line.startswith("|")]
    assert rows and all(line.endswith("|") for line in rows)


def test_a_line_break_in_a_file_name_adds_no_line_to_a_markdown_list(tmp_path):
    from multibackend.verify.render import markdown_matrix

    name = "evil\n- injected line: all PASSED\n.py"
    cell = {"file": name, "backend": "torch", "status": "output differs", "seconds": 1.0, "error": "differs"}
    cell |= {"differences": ["cell 2\n- injected too"], "code_cells_skipped": [{"cell": 1, "reason": "shell install"}]}
    payload = {
        "backends": ["torch"],
        "files": [name],
        "cells": [cell],
        "warnings": [f"{name}: imports torch (line 1)"],
        "passed": False,
        "created": "2026-12-02T08:00:00+00:00",
        "merged_from": ["a\n- b"],
    }
    text = markdown_matrix(payload)
    assert not [line for line in text.splitlines() if line.startswith("- injected") or line.startswith("- b")]
    assert sum(line.startswith("- evil") for line in text.splitlines()) == 3  # differs, not run, warning


def test_a_file_named_three_times_is_verified_once(tmp_path):
    from multibackend.verify.files import collect_files

    (tmp_path / "course").mkdir()
    script = tmp_path / "course" / "s.py"
    script.write_text("print(1)\n")
    assert collect_files([str(script), str(tmp_path / "course"), f"{tmp_path}/course/../course/s.py"]) == [script]


def verify_in_a_process(path: Path, out: Path) -> subprocess.CompletedProcess:
    """`multibackend verify PATH` under the backend under test, as a command line, its output captured."""
    command = [
        sys.executable,
        "-m",
        "multibackend",
        "verify",
        str(path),
        "--backends",
        QUICK_BACKEND,
        "--out",
        str(out),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_scripts_are_read_as_python_reads_them(tmp_path):
    from multibackend.verify.files import portability_warnings, source_of

    latin = tmp_path / "latin.py"
    latin.write_bytes("# -*- coding: latin-1 -*-\nprint('caf\xe9')\n".encode("latin-1"))
    assert "café" in source_of(latin)
    bom = tmp_path / "bom.py"
    bom.write_bytes("\ufeffimport torch\n".encode())
    assert [warning.split(": ", 1)[1] for warning in portability_warnings(bom)] == [
        "imports torch (line 1): not portable across Keras backends"
    ]
    result = verify_in_a_process(latin, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_nbformat_3_notebook_is_converted_and_runs(tmp_path):
    notebook = {
        "nbformat": 3,
        "nbformat_minor": 0,
        "metadata": {},
        "worksheets": [
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "input": "print('from nbformat 3', 6 * 7)",
                        "language": "python",
                        "outputs": [],
                        "collapsed": False,
                    }
                ]
            }
        ],
    }
    path = tmp_path / "old.ipynb"
    path.write_text(json.dumps(notebook))
    result = verify_in_a_process(path, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    [row] = json.loads((tmp_path / "out" / "verify.json").read_text())["cells"]
    assert row["status"] == "passed" and row["code_cells_ran"] == 1


def test_a_bad_data_dir_variable_is_named_as_such(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MULTIBACKEND_DATA_DIR", str(tmp_path / "nowhere"))
    (tmp_path / "s.py").write_text("print(1)\n")
    line = one_line_error(
        capsys, "verify", str(tmp_path / "s.py"), "--offline-datasets", "on", "--out", str(tmp_path / "out")
    )
    assert (
        f"MULTIBACKEND_DATA_DIR={tmp_path / 'nowhere'} is not a folder" in line
        and "--data-dir" not in line.split(";")[0]
    )


def baseline_payload(**settings) -> dict:
    """A minimal verify.json that its schema accepts, as an earlier commit's."""
    return {
        "backends": ["torch"],
        "files": ["s.py"],
        "cells": [{"file": "s.py", "backend": "torch", "status": "passed", "seconds": 1.0, "error": ""}],
        "warnings": [],
        "passed": True,
        "created": "2026-12-01T00:00:00+00:00",
        **settings,
    }


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["--fail-on-regression"], "--fail-on-regression needs --baseline"),
        (["--max-slowdown", "2"], "--max-slowdown needs --baseline"),
        (["--baseline", "BASE", "--max-slowdown", "1"], "--max-slowdown: must be a ratio above 1"),
        (["--baseline", "BASE", "--max-slowdown", "nan"], "--max-slowdown: must be a ratio above 1"),
        (["--baseline", "NOWHERE"], "--baseline"),
        (["--baseline", "BROKEN"], "--baseline"),
        (["--baseline", "SMOKED"], "it ran with smoke true, this run with smoke false"),
        (["--csv", "OUT/verify.json"], "would overwrite"),
    ],
)
def test_a_baseline_and_its_options_are_checked_before_any_run(tmp_path, capsys, given, named):
    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    for name, payload in (("base", baseline_payload(smoke=False)), ("smoked", baseline_payload(smoke=True))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "verify.json").write_text(json.dumps(payload))
    (tmp_path / "broken.json").write_text('{"cells": "not a list"}')
    places = {
        "BASE": tmp_path / "base",
        "SMOKED": tmp_path / "smoked",
        "NOWHERE": tmp_path / "nowhere",
        "BROKEN": tmp_path / "broken.json",
        "OUT/verify.json": tmp_path / "out" / "verify.json",
    }
    arguments = [str(places.get(arg, arg)) for arg in given]
    line = one_line_error(capsys, "verify", str(script), "--out", str(tmp_path / "out"), *arguments)
    assert named in line
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_a_run_carries_every_field_its_process_reported_that_a_run_has():
    # The judge once copied the report's fields one by one: a field added to both was dropped until a second edit.
    import dataclasses

    from multibackend.verify.judge import judge
    from multibackend.verify.launch import ChildOutcome
    from multibackend.verify.model import ChildReport, Run, VerifyOptions

    values = {"int": 7, "str": "x", "list[int]": [3], "list[dict]": [{"cell": 3}], "float | None": 1.5}
    reported = {item.name: values[item.type] for item in dataclasses.fields(ChildReport) if item.type in values}
    report = ChildReport(**{**reported, "kind": "script", "sandbox": True, "failed_cell": 2, "error": "E: e"})
    finished = types.SimpleNamespace(seconds=1.0, stdout="", stderr="", returncode=0, timed_out=False)
    run = judge(Path("a.py"), "torch", VerifyOptions(), ChildOutcome(finished, report, "", "", None))
    shared = {item.name for item in dataclasses.fields(Run)} & set(reported) - set(ChildReport.JUDGED)
    assert shared and all(getattr(run, name) == getattr(report, name) for name in shared)
    assert run.code_cells_ran == 1 and run.code_cells_gated == report.gated and run.failed_cell == 2
