"""Incremental verification (`--state`): a run whose inputs are unchanged since it last ran is not run again."""

import json
import xml.etree.ElementTree as ElementTree

from ..conftest import QUICK_BACKEND, run_cli

COUNTING_SCRIPT = "import keras\nopen(__file__ + '.runs', 'a').write('ran\\n')\nprint('version {version}')\n"


def runs_of(script) -> int:
    counter = script.with_name(script.name + ".runs")
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def verify_course(course, tmp_path, name, *extra):
    out = tmp_path / name
    result = run_cli(
        "verify",
        str(course),
        "--backends",
        QUICK_BACKEND,
        "--state",
        str(tmp_path / "state"),
        "--out",
        str(out),
        *extra,
    )
    payload = json.loads((out / "verify.json").read_text())
    return result, {cell["file"].rsplit("/", 1)[1]: cell for cell in payload["cells"]}, out


def test_only_the_runs_whose_inputs_changed_run_again(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    first, second = course / "first.py", course / "second.py"
    for script in (first, second):
        script.write_text(COUNTING_SCRIPT.format(version=1))
    result, cells, _ = verify_course(course, tmp_path, "initial")
    assert result.returncode == 0 and (runs_of(first), runs_of(second)) == (1, 1), result.stdout + result.stderr
    assert all(cell["unchanged_since"] == "" for cell in cells.values())

    second.write_text(COUNTING_SCRIPT.format(version=2))  # one file edited: only its run runs
    result, cells, out = verify_course(course, tmp_path, "edited")
    assert result.returncode == 0 and (runs_of(first), runs_of(second)) == (1, 2), result.stdout + result.stderr
    assert cells["first.py"]["status"] == "passed" and cells["first.py"]["unchanged_since"]
    assert cells["second.py"]["unchanged_since"] == ""
    assert "passed (unchanged since " in (out / "verify.md").read_text()

    result, cells, out = verify_course(course, tmp_path, "junit", "--junit-xml", str(tmp_path / "junit.xml"))
    assert (runs_of(first), runs_of(second)) == (1, 2)  # nothing changed: nothing ran
    cases = ElementTree.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    marked = [case for case in cases if case.find("properties/property[@name='unchanged_since']") is not None]
    assert len(marked) == 2 and all(case.find("failure") is None for case in marked)

    verify_course(course, tmp_path, "all", "--rerun", "all")
    assert (runs_of(first), runs_of(second)) == (2, 3)


def test_the_inputs_are_the_code_the_settings_the_backend_and_the_downloads_read(tmp_path):
    from multibackend.verify.model import VerifyOptions
    from multibackend.verify.state import inputs_digest

    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    cache = tmp_path / "cache"
    (cache / "datasets").mkdir(parents=True)
    (cache / "datasets" / "imdb.npz").write_bytes(b"one")
    options = VerifyOptions(data_cache=str(cache))
    read = {"downloads": [{"origin": "https://host/imdb.npz", "file": "imdb.npz", "downloaded": False}]}
    digest = inputs_digest(script, QUICK_BACKEND, options, read)
    assert digest == inputs_digest(
        script, QUICK_BACKEND, VerifyOptions(data_cache=str(cache), jobs=4), read
    )  # machine's
    assert digest != inputs_digest(script, QUICK_BACKEND, VerifyOptions(data_cache=str(cache), smoke=True), read)
    assert digest != inputs_digest(script, "jax" if QUICK_BACKEND != "jax" else "torch", options, read)
    (cache / "datasets" / "imdb.npz").write_bytes(b"other")  # the dataset changed in the cache
    assert digest != inputs_digest(script, QUICK_BACKEND, options, read)


def test_a_failure_is_kept_until_its_inputs_change_and_a_timeout_always_runs_again(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    broken = course / "broken.py"
    broken.write_text("open(__file__ + '.runs', 'a').write('ran\\n')\nraise SystemExit(3)\n")  # no Keras: quick
    slow = course / "slow.py"
    slow.write_text("open(__file__ + '.runs', 'a').write('ran\\n')\nimport time\ntime.sleep(60)\n")
    for name in ("one", "two"):
        result, cells, _ = verify_course(course, tmp_path, name, "--timeout", "3")
        assert result.returncode == 1 and cells["slow.py"]["status"] == "timed out"
    assert runs_of(slow) == 2 and cells["slow.py"]["unchanged_since"] == ""
    assert runs_of(broken) == 1 and cells["broken.py"]["status"] == "failed" and cells["broken.py"]["unchanged_since"]
    assert "FAILED (unchanged since " in (tmp_path / "two" / "verify.md").read_text()
    slow.unlink()
    result, cells, _ = verify_course(
        course, tmp_path, "failed", "--rerun", "failed", "--junit-xml", str(tmp_path / "j")
    )
    assert result.returncode == 1 and runs_of(broken) == 2 and cells["broken.py"]["unchanged_since"] == ""
    assert ElementTree.parse(tmp_path / "j").getroot().find(".//testcase/failure") is not None


def test_a_run_stopped_by_a_missing_module_runs_again_once_it_can_be_imported(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    script = course / "needs.py"
    script.write_text(COUNTING_SCRIPT.format(version=1) + "import course_helper\nprint(course_helper.VALUE)\n")
    result, cells, _ = verify_course(course, tmp_path, "missing")
    assert cells["needs.py"]["error"] == "ModuleNotFoundError: No module named 'course_helper'"
    result, cells, _ = verify_course(course, tmp_path, "still_missing")
    assert runs_of(script) == 1 and cells["needs.py"]["unchanged_since"]
    (course / "course_helper.py").write_text("VALUE = 7\n")  # now importable: the environment changed
    result, cells, _ = verify_course(course, tmp_path, "found")
    assert result.returncode == 0 and runs_of(script) == 2, result.stdout + result.stderr
    assert cells["needs.py"]["status"] == "passed" and cells["needs.py"]["unchanged_since"] == ""


def test_a_state_file_that_cannot_be_used_is_one_line(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "verify-state.json").write_text("{not json")
    script = tmp_path / "s.py"
    script.write_text("print(1)\n")
    result = run_cli("verify", str(script), "--backends", QUICK_BACKEND, "--state", str(tmp_path / "state"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "verify-state.json cannot be used" in result.stderr


def test_a_state_of_the_first_format_is_read_as_empty(tmp_path):
    # Its digests leave out what the environment lacked: a kept failure there would never run again.
    from multibackend.verify.model import VerifyOptions
    from multibackend.verify.state import RunState

    entry = {"inputs": "0" * 64, "passed": "2026-12-01T00:00:00+00:00", "run": {"status": "passed"}}
    (tmp_path / "verify-state.json").write_text(json.dumps({"format": 1, "runs": {"a.py\0torch": entry}}))
    assert RunState(tmp_path, VerifyOptions()).runs == {}
