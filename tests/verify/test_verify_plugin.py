"""The pytest plugin: `pytest --multibackend PATHS`, course files as one test item per backend."""

import xml.etree.ElementTree as ElementTree

import pytest

from ..conftest import BACKEND, run_cli
from ..helpers import write_notebook


def run_pytest(folder, *args: str):
    """pytest in a fresh process, in `folder` (its own rootdir and cache), with the plugin as installed."""
    (folder / "pytest.ini").write_text("[pytest]\n")  # keeps the project's own pytest settings out
    return run_cli(*args, cwd=folder, module="pytest")


def plain_course(folder):
    """Scripts that need no backend (no Keras import: a quick process each); one broken, one that must never be
    imported into pytest's own process (a course script is run, not collected as a test module)."""
    course = folder / "course"
    course.mkdir(parents=True)
    (course / "passes.py").write_text("print('accuracy', 0.98)\n")
    (course / "broken.py").write_text("raise SystemExit('broken on purpose')\n")
    (course / "not_in_pytest.py").write_text("import sys\nassert 'pytest' not in sys.modules, 'imported into pytest'\n")
    (course / "test_own.py").write_text("def test_own():\n    pass\n")  # the course's own pytest test: left to pytest
    return course


def cases(junit) -> dict[str, str]:
    """`classname::name` -> outcome in a JUnit XML file (pytest's classname of `course/ok.py` is `course.ok`)."""
    root = ElementTree.parse(junit).getroot()
    found = {}
    for case in root.iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        found[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return found


def test_course_files_are_one_item_per_backend_with_junit_selection_and_last_failed(tmp_path):
    plain_course(tmp_path)
    first = run_pytest(tmp_path, "--multibackend", "course", "-n", "2", "--junitxml=out.xml", "-q")
    assert first.returncode == 1, first.stdout + first.stderr
    found = cases(tmp_path / "out.xml")
    backends = ("torch", "tensorflow", "jax")
    expected = {f"course.{name}::{backend}" for name in ("passes", "broken", "not_in_pytest") for backend in backends}
    assert expected <= set(found) and "course.test_own::test_own" in found
    assert {case for case, outcome in found.items() if outcome == "failure"} == {
        f"course.broken::{backend}" for backend in backends
    }
    assert "course/broken.py under jax: FAILED" in first.stdout and "SystemExit: broken on purpose" in first.stdout
    # --lf: only the failed items again; -k and a backend list select as pytest does.
    again = run_pytest(tmp_path, "--multibackend", "course", "--lf", "--junitxml=again.xml", "-q")
    assert set(cases(tmp_path / "again.xml")) == {f"course.broken::{backend}" for backend in backends}
    assert again.returncode == 1
    chosen = run_pytest(tmp_path, "--multibackend=jax", "course", "-k", "passes", "--junitxml=k.xml", "-q")
    assert chosen.returncode == 0 and set(cases(tmp_path / "k.xml")) == {"course.passes::jax"}


def test_a_script_named_on_the_command_line_is_run_not_imported(tmp_path):
    plain_course(tmp_path)
    result = run_pytest(tmp_path, "--multibackend=jax", "course/not_in_pytest.py", "--junitxml=out.xml", "-q")
    assert result.returncode == 0, result.stdout
    assert cases(tmp_path / "out.xml") == {"course.not_in_pytest::jax": "passed"}


def test_three_shards_of_the_plugin_cover_every_item_once(tmp_path):
    plain_course(tmp_path)
    seen = []
    for index in (1, 2, 3):
        result = run_pytest(
            tmp_path, "--multibackend", "course", "--multibackend-shard", f"{index}/3", f"--junitxml=s{index}.xml"
        )
        assert result.returncode in (0, 1), result.stdout + result.stderr
        seen += [case for case in cases(tmp_path / f"s{index}.xml") if "test_own" not in case]
    assert sorted(seen) == sorted(
        f"course.{name}::{backend}"
        for name in ("passes", "broken", "not_in_pytest")
        for backend in ("torch", "tensorflow", "jax")
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--multibackend=mxnet", "course"], "unknown backend 'mxnet'"),
        (["--multibackend", "course", "--multibackend-shard", "3/2"], "K/N"),
        (["--multibackend", "course", "--multibackend-durations-from", "x.json"], "needs --multibackend-shard"),
    ],
)
def test_bad_plugin_options_are_usage_errors(tmp_path, args, named):
    plain_course(tmp_path)
    result = run_pytest(tmp_path, *args)
    assert result.returncode == 4 and named in result.stderr, result.stderr


def test_without_the_option_course_files_are_not_collected(tmp_path):
    plain_course(tmp_path)
    result = run_pytest(tmp_path, "course", "--junitxml=out.xml", "-q")
    assert result.returncode == 0 and set(cases(tmp_path / "out.xml")) == {"course.test_own::test_own"}


@pytest.mark.backend
def test_a_broken_notebook_fails_naming_its_cell_and_the_backend_that_ran(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    write_notebook(
        course / "lesson.ipynb",
        "import keras\nimport numpy as np\nprint(keras.ops.sum(keras.ops.ones(3)))",
        "model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\nmodel.compile('sgd', 'mse')\n"
        "model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, epochs=2, verbose=0)\nprint('second cell')",
        "raise ValueError('the third cell is broken')",
    )
    result = run_pytest(tmp_path, f"--multibackend={BACKEND}", "course", "--junitxml=out.xml")
    assert result.returncode == 1
    assert f"course/lesson.ipynb under {BACKEND}: FAILED" in result.stdout and f"(ran: {BACKEND})" in result.stdout
    assert "cell 3: ValueError: the third cell is broken" in result.stdout and "3 code cells ran" in result.stdout
    root = ElementTree.parse(tmp_path / "out.xml").getroot()
    properties = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert properties["backend_used"] == BACKEND and properties["code_cells_ran"] == "3"
    assert properties["device_used"].startswith("cpu: ") and float(properties["fit_1_steady_step_s"]) > 0


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--multibackend-timeout", "0"),
        ("--multibackend-timeout", "-1"),
        ("--multibackend-timeout", "nan"),
        ("--multibackend-timeout", "inf"),
        ("--multibackend-atol", "-1"),
        ("--multibackend-rtol", "nan"),
        ("--multibackend-seed", "-1"),
        ("--multibackend-seed", "99999999999"),
        ("--multibackend-pass-env", "MULTIBACKEND_SMOKE"),
    ],
)
def test_the_plugin_refuses_what_verify_refuses(tmp_path, option, value):
    # One declaration of the options (verify/options.py): the plugin took these with plain float/int types.
    plain_course(tmp_path)
    result = run_pytest(tmp_path, "--multibackend", f"{option}={value}", "course", "-q")
    assert result.returncode == 4 and option in result.stderr, result.stdout + result.stderr
    assert "passed" not in result.stdout
