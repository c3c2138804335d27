"""Comparing stored notebook outputs with new ones (`multibackend.verify.outputs`), and the verify matrix files."""

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import nbformat
import pytest

from multibackend.verify import junit
from multibackend.verify.outputs import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    compare_notebooks,
    compare_text,
    directives,
    last_printed_line,
    normalize,
)
from multibackend.verify.render import html_matrix, markdown_matrix

from ..conftest import QUICK_BACKEND, run_cli

PROGRESS = (
    "\x1b[1m469/469\x1b[0m \x1b[32m━━━━━━━━━━━━━━━━━━━━\x1b[0m\x1b[37m\x1b[0m \x1b[1m2s\x1b[0m 4ms/step - "
    "accuracy: 0.8734 - loss: 0.4352\n"
)


def notebook(*cells: tuple[str, str]) -> dict:
    """A notebook whose code cells have (source, stdout) each."""
    made = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# title")])
    for source, stdout in cells:
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stdout)] if stdout else []
        made.cells.append(cell)
    return json.loads(nbformat.writes(made))


def test_what_varies_by_nature_is_removed():
    text = (
        "Epoch 1/20\n" + PROGRESS + "313/313 - 1s - 3ms/step\n"
        "saved at 2026-11-29T07:40:14+00:00 in /tmp/abc/run-1/model.keras\n"
        "<keras.src.callbacks.history.History at 0x7f3a2c1b9d50>\n"
        "step 3\r step 4\r done   here  \n"
    )
    assert normalize(text) == (
        "Epoch 1/20\nsaved at <time> in <path>\n<keras.src.callbacks.history.History at <address>>\n done here"
    )


@pytest.mark.parametrize(
    ("stored", "new", "agree"),
    [
        ("test_accuracy: 0.9834", "test_accuracy: 0.9826", True),  # the course's backends: 20 epochs
        ("test_accuracy: 0.9834", "test_accuracy: 0.9684", False),  # 1.5 points lower
        ("test_loss: 0.0773", "test_loss: 0.0672", True),  # the 20-epoch losses of tensorflow and torch
        ("(4, 6)", "(4, 6)", True),
        ("(4, 6)", "(6, 4)", False),  # shapes are integers: exactly
        ("parameters: 407050", "parameters: 407051", False),
        ("misclassified: 166 of 10000", "misclassified: 174 of 10000", False),
        ("test_accuracy: 0.98", "test accuracy: 0.98", False),  # text exactly
        ("loss nan", "loss nan", True),
        ("loss nan", "loss 0.1", False),
        ("[0.1 0.2]", "[0.1  0.2]", True),  # padding follows the width of numbers
    ],
)
def test_numbers_within_tolerance_integers_shapes_and_text_exactly(stored, new, agree):
    assert compare_text(normalize(stored), normalize(new), rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL)[0] is agree


def test_differences_name_the_cell_the_stored_and_new_numbers():
    stored = notebook(("print('shape', (4, 6))", "shape (4, 6)\n"), ("print(acc)", "test_accuracy: 0.9834\n"))
    new = notebook(("print('shape', (4, 6))", "shape (4, 6)\n"), ("print(acc)", "test_accuracy: 0.9512\n"))
    [mismatch] = compare_notebooks(stored, new)
    assert mismatch.cell == 3  # Jupyter's count: the markdown title is cell 1
    assert mismatch.summary() == (
        "cell 3: output differs: stored 0.9834, new 0.9512 (differ by 0.0322, tolerance 0.012)"
    )
    text_stored = notebook(("print(x)", "relu\n"))
    [mismatch] = compare_notebooks(text_stored, notebook(("print(x)", "tanh\n")))
    assert mismatch.summary() == "cell 2: output differs: stored 'relu', new 'tanh'"


@pytest.mark.parametrize(
    ("source", "tags", "expected"),
    [
        ("# NBVAL_IGNORE_OUTPUT\nprint(1)", [], "ignore_output"),
        ("import x\n#NBVAL_SKIP", [], "skip"),
        ("print(1)", ["nbval-check-output"], "check_output"),
        ("1/0", ["raises-exception"], "raises_exception"),
        ("# NBVAL_RAISES_EXCEPTION\n1/0", [], "raises_exception"),
    ],
)
def test_nbval_comments_and_tags_are_read(source, tags, expected):
    marks = directives(source, tags)
    assert [name for name, value in vars(marks).items() if value] == [expected]
    assert not any(vars(directives("print('NBVAL_SKIP is only a word here')")).values())


def test_ignored_skipped_and_lax_mode_cells_are_not_compared():
    stored = notebook(
        ("# NBVAL_IGNORE_OUTPUT\nprint(r)", "0.1\n"),
        ("# NBVAL_SKIP\nprint(r)", "0.2\n"),
        ("print(r)", "0.3\n"),
        ("# NBVAL_CHECK_OUTPUT\nprint(r)", "0.4\n"),
    )
    new = notebook(("", "9.1\n"), ("", ""), ("", "9.3\n"), ("", "9.4\n"))
    assert [m.cell for m in compare_notebooks(stored, new)] == [4, 5]
    assert [m.cell for m in compare_notebooks(stored, new, mode="marked")] == [5]
    assert compare_notebooks(stored, new, mode="off") == []
    assert compare_notebooks(stored, new, atol=10) == []


def test_a_cell_saved_without_outputs_is_not_compared_unless_marked():
    stored = notebook(("print(1)", ""), ("# NBVAL_CHECK_OUTPUT\nprint(2)", ""))
    new = notebook(("", "1\n"), ("", "2\n"))
    assert [m.cell for m in compare_notebooks(stored, new)] == [3]


def test_stderr_and_images_are_not_compared_but_results_are():
    stored = notebook(("f()", "out\n"))
    new = notebook(("f()", "out\n"))
    new["cells"][1]["outputs"] += [
        {"output_type": "stream", "name": "stderr", "text": "UserWarning: something\n"},
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBOR..."}},
    ]
    assert compare_notebooks(stored, new) == []
    new["cells"][1]["outputs"].append(
        {"output_type": "execute_result", "execution_count": 1, "metadata": {}, "data": {"text/plain": "(4, 6)"}}
    )
    assert [m.cell for m in compare_notebooks(stored, new)] == [2]


def test_the_last_printed_line_with_a_number():
    made = notebook(
        ("a", "test_accuracy: 0.9834\n"),
        ("b", "saved the picture\n"),
        ("c", ""),
        ("# NBVAL_IGNORE_OUTPUT\nd", "misclassified: 166\n"),
        ("# NBVAL_IGNORE_OUTPUT\ne", "Epoch 5/5\nloss 0.06, accuracy 1.00\n(see the solve rate)\nEpoch 1/1\n"),
    )
    assert last_printed_line(made) == "test_accuracy: 0.9834"
    # From the cells that trained: those whose output is compared first; Keras's epoch lines are no result.
    assert last_printed_line(made, only={2, 3, 6}) == "test_accuracy: 0.9834"
    assert last_printed_line(made, only={3, 6}) == "loss 0.06, accuracy 1.00"
    assert last_printed_line(made, only={3}) == ""


def verify_payload() -> dict:
    def cell(file, backend, status, error="", differences=(), last_line=""):
        return {
            "file": file,
            "backend": backend,
            "status": status,
            "seconds": 1.5,
            "error": error,
            "differences": list(differences),
            "last_line": last_line,
        }

    difference = "cell 6: output differs: stored 0.9834, new 0.9512 (differ by 0.0322, tolerance 0.012)"
    return {
        "backends": ["torch", "jax"],
        "files": ["a.ipynb", "b.py"],
        "compare_outputs": "all",
        "rtol": 0.0,
        "atol": 0.012,
        "warnings": [],
        "passed": False,
        "created": "2026-11-29T08:00:00+00:00",
        "cells": [
            cell("a.ipynb", "torch", "passed", last_line="test_accuracy: 0.9834"),
            cell("a.ipynb", "jax", "output differs", difference, [difference], "test_accuracy: 0.9512"),
            cell("b.py", "torch", "timed out", "no result after 3 s"),
            cell("b.py", "jax", "not installed", "pip install jax"),
        ],
    }


def test_junit_xml_has_a_test_case_per_file_and_backend():
    root = junit.document(verify_payload()).getroot()
    suite = root.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {(case.get("classname"), case.get("name")): case for case in suite.iter("testcase")}
    assert len(cases) == 4
    assert "stored 0.9834, new 0.9512" in cases["a.ipynb", "jax"].find("failure").text
    assert cases["b.py", "torch"].find("failure").get("type") == "timed out"
    assert cases["b.py", "jax"].find("skipped") is not None
    assert cases["a.ipynb", "torch"].find("failure") is None
    ElementTree.fromstring(ElementTree.tostring(root))  # well-formed


def test_matrix_shows_status_seconds_and_the_last_numbers_side_by_side():
    markdown = markdown_matrix(verify_payload())
    assert "| a.ipynb | passed (1.5 s) | OUTPUT DIFFERS (1.5 s): cell 6" in markdown
    assert "| a.ipynb | test_accuracy: 0.9834 | test_accuracy: 0.9512 |" in markdown
    page = html_matrix(verify_payload())
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page.split("</title>")[1]
    assert 'class="output-differs"' in page and 'class="timed-out"' in page and 'class="not-installed"' in page


def test_nbval_directives_are_honoured_when_a_notebook_runs(tmp_path):
    # No backend is imported: the notebook only prints. Stored outputs written by hand, as a saved notebook has them.
    stored = notebook(
        ("print('shape', (4, 6))", "shape (4, 6)\n"),
        ("# NBVAL_IGNORE_OUTPUT\nimport random\nprint(random.random())", "0.123\n"),
        ("# NBVAL_SKIP\nraise SystemExit('a skipped cell must not run')", "whatever\n"),
        ("# NBVAL_RAISES_EXCEPTION\n1 / 0", ""),
        ("print('accuracy', 0.98 + 0.0034)", "accuracy 0.9834\n"),
    )
    good = tmp_path / "good.ipynb"
    good.write_text(json.dumps(stored))
    not_raising = json.loads(json.dumps(stored))
    not_raising["cells"][4]["source"] = "# NBVAL_RAISES_EXCEPTION\n1 / 1"
    (tmp_path / "bad.ipynb").write_text(json.dumps(not_raising))
    lower = json.loads(json.dumps(stored))
    lower["cells"][5]["outputs"][0]["text"] = "accuracy 0.9512\n"
    (tmp_path / "differs.ipynb").write_text(json.dumps(lower))
    files = [str(good), str(tmp_path / "bad.ipynb"), str(tmp_path / "differs.ipynb")]
    result = run_cli(
        "verify",
        *files,
        "--backends",
        QUICK_BACKEND,
        "--jobs",
        "2",
        "--out",
        str(tmp_path / "out"),
        "--junit-xml",
        str(tmp_path / "junit" / "verify.xml"),
    )
    cells = {
        c["file"].rsplit("/", 1)[1]: c for c in json.loads((tmp_path / "out" / "verify.json").read_text())["cells"]
    }
    assert cells["good.ipynb"]["status"] == "passed", cells
    assert cells["good.ipynb"]["code_cells_ran"] == 4 and cells["good.ipynb"]["code_cells_skipped"] == [
        {"cell": 4, "reason": "NBVAL_SKIP"}
    ]
    assert cells["bad.ipynb"]["status"] == "failed"
    assert cells["bad.ipynb"]["error"] == "cell 5: AssertionError: marked NBVAL_RAISES_EXCEPTION but raised none"
    assert cells["differs.ipynb"]["status"] == "output differs"
    assert cells["differs.ipynb"]["error"].startswith("cell 6: output differs: stored 0.9512, new 0.98"), cells
    assert result.returncode == 1
    assert (tmp_path / "out" / "verify.html").is_file()
    cases = ElementTree.parse(tmp_path / "junit" / "verify.xml").getroot().iter("testcase")
    assert sorted((Path(case.get("classname")).name, case.find("failure") is not None) for case in cases) == [
        ("bad.ipynb", True),
        ("differs.ipynb", True),
        ("good.ipynb", False),
    ]


def test_thread_limits_share_the_cores_and_keep_what_the_user_set():
    from multibackend.runtime.cores import available_cores, thread_limits

    assert thread_limits(1, {}) == {}
    share = str(max(1, available_cores() // 2))
    limits = thread_limits(2, {})
    assert limits["OMP_NUM_THREADS"] == share and limits["TF_NUM_INTRAOP_THREADS"] == share
    assert thread_limits(2, {"OMP_NUM_THREADS": "3"}).get("OMP_NUM_THREADS") is None
    if share == "1":
        assert "--xla_cpu_multi_thread_eigen=false" in limits["XLA_FLAGS"]


def test_cells_side_by_side_get_their_share_of_the_cores(tmp_path, monkeypatch):
    from multibackend.runtime.cores import available_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    share = max(1, available_cores() // 2)
    for index in range(2):
        (tmp_path / f"threads{index}.py").write_text(f"import os\nassert os.environ['OMP_NUM_THREADS'] == '{share}'\n")
    result = run_cli(
        "verify", str(tmp_path), "--backends", QUICK_BACKEND, "--jobs", "2", "--out", str(tmp_path / "out")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    cells = json.loads((tmp_path / "out" / "verify.json").read_text())["cells"]
    assert [cell["status"] for cell in cells] == ["passed"] * 2
