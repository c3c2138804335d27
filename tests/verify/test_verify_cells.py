"""What verify decides before anything runs (`verify.cells`) and after (`verify.verdicts`, the files it writes)."""

import json
import xml.etree.ElementTree as ElementTree

import nbformat
import numpy as np
import pytest

from multibackend.course.offline import dataset_slice
from multibackend.verify import junit
from multibackend.verify.cells import installs, plan
from multibackend.verify.render import html_matrix, markdown_matrix
from multibackend.verify.verdicts import cells_run_nowhere, file_verdict


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("pip install keras keras-hub --upgrade -q", True),
        ("pip3 install -q tensorflow", True),
        ("python -m pip install --user six", True),
        ("{sys.executable} -m pip install six", True),
        ("/usr/bin/python3.11 -m pip uninstall -y six", True),
        ("sudo apt-get install -y graphviz", True),
        ("apt update && apt install -y graphviz", True),
        ("conda install -c conda-forge pydot", True),
        ("uv pip install keras", True),
        ("uv add keras", True),
        ("PIP_NO_INPUT=1 pip install six", True),
        ("cd /tmp; pip install six", True),
        ("pip list", False),
        ("pip show keras", False),
        ("pip --version", False),
        ("python -c 'print(1)'", False),
        ("ls -la && nvidia-smi", False),
        ("echo pip install six", False),
        ("wget https://example.org/data.zip", False),
    ],
)
def test_shell_commands_that_change_what_is_installed_are_recognized(command, expected):
    assert installs(command) is expected


def code_notebook(*cells) -> dict:
    """A notebook from (source, tags) pairs or sources, with a markdown cell first (cells count from 1 all the same)."""
    made = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# course")])
    for item in cells:
        source, tags = item if isinstance(item, tuple) else (item, [])
        cell = nbformat.v4.new_code_cell(source)
        cell.metadata["tags"] = tags
        made.cells.append(cell)
    return json.loads(nbformat.writes(made))


COURSE = code_notebook(
    "!pip install keras keras-hub --upgrade -q",  # cell 2
    "import os\nos.environ['KERAS_BACKEND'] = 'jax'",  # 3
    "%%backend tensorflow\nimport tensorflow as tf",  # 4
    "%%backend torch\nimport torch",  # 5
    ("print('jax and torch')", ["backend-only:jax", "backend-only:torch"]),  # 6
    "%pip install -q pydot\nimport sys\nif 'google.colab' in sys.modules:\n    !pip install six\n!pip list",  # 7
    "%%bash\npip install six\necho done",  # 8
    "%%capture\n%pip install graphviz",  # 9
    "# NBVAL_SKIP\nraise SystemExit",  # 10
    "# NBVAL_RAISES_EXCEPTION\n1 / 0",  # 11
    "",  # 12: empty, never run
)


def test_a_plan_runs_what_this_backend_may_run_and_leaves_out_installs():
    torch = plan(COURSE, "torch")
    assert torch.run == [3, 5, 6, 7, 8, 11]
    assert [(gated.cell, gated.backends) for gated in torch.gated] == [(4, ("tensorflow",))]
    assert [(skipped.cell, skipped.line) for skipped in torch.skipped] == [
        (2, 1),
        (7, 1),
        (7, 4),
        (8, 2),
        (9, 2),
        (10, None),
    ]
    assert torch.skipped[0].reason == "shell install: !pip install keras keras-hub --upgrade -q"
    assert torch.skipped[-1].reason == "NBVAL_SKIP"
    # Lines taken out keep the cell's shape: the `if` still has a body; `!pip list` still runs.
    assert torch.sources[7].split("\n")[1:] == [
        "import sys",
        "if 'google.colab' in sys.modules:",
        "    pass  # multibackend verify: a shell install was here, not run",
        "!pip list",
    ]
    assert torch.sources[8].split("\n")[1:] == [
        ": # multibackend verify: a shell install was here, not run",
        "echo done",
    ]
    assert torch.raises == {11}
    assert torch.not_compared == {2, 4, 5, 6, 7, 8, 9, 10}
    tensorflow = plan(COURSE, "tensorflow")
    assert [gated.cell for gated in tensorflow.gated] == [5, 6] and 4 in tensorflow.run
    assert plan(COURSE, "jax").run == [3, 6, 7, 8, 11]


def test_with_shell_run_everything_runs_as_written():
    everything = plan(COURSE, "torch", shell="run")
    assert everything.run == [2, 3, 5, 6, 7, 8, 9, 11] and not everything.sources
    assert [skipped.reason for skipped in everything.skipped] == ["NBVAL_SKIP"]


def row(backend, status, error="", **fields):
    return {
        "file": "f.ipynb",
        "backend": backend,
        "status": status,
        "seconds": 1.0,
        "error": error,
        "backend_used": backend,
        **fields,
    }


@pytest.mark.parametrize(
    ("rows", "imports", "verdict", "detail"),
    [
        (
            [row("torch", "passed"), row("jax", "passed"), row("tensorflow", "not installed")],
            "",
            "portable",
            "passed on torch, jax",
        ),
        (
            [row(name, "failed", "AttributeError: `np.Inf` was removed") for name in ("torch", "jax")],
            "",
            "fails everywhere",
            "the same error on torch, jax: AttributeError",
        ),
        (
            [row("torch", "passed"), row("jax", "failed", "ValueError: no jax here")],
            "",
            "backend-specific",
            "passes on torch; fails on jax: failed (ValueError: no jax here)",
        ),
        (
            [row("torch", "failed", "ValueError: a"), row("jax", "failed", "TypeError: b")],
            "",
            "backend-specific",
            "fails on torch: failed (ValueError: a); jax: failed (TypeError: b)",
        ),
        (
            [row("tensorflow", "passed"), row("torch", "failed", "AttributeError: no GradientTape")],
            "tensorflow",
            "single-backend by design",
            "imports tensorflow directly; passes on tensorflow",
        ),
        (
            [row("jax", "passed"), row("torch", "pinned", "pinned to jax", backend_used="jax")],
            "",
            "single-backend by design",
            "pinned to jax",
        ),
        (
            [
                row("tensorflow", "passed", trained=[9]),
                row(
                    "torch",
                    "wrong backend",
                    "ran jax",
                    backend_used="jax",
                    code_cells_gated=[{"cell": 9, "backend": "tensorflow"}],
                ),
            ],
            "",
            "single-backend by design",
            "trains only in cells gated to tensorflow",
        ),
        (
            [row("torch", "passed"), row("jax", "wrong backend", "ran torch, not jax", backend_used="torch")],
            "",
            "backend-specific",
            "fails on jax: wrong backend",
        ),
        # A file written for tensorflow that fails there too is not "by design": a maintainer would read it as working.
        (
            [row("tensorflow", "failed", "ValueError: shapes"), row("torch", "failed", "AttributeError: no tf here")],
            "tensorflow",
            "backend-specific",
            "fails on tensorflow: failed (ValueError: shapes)",
        ),
        (
            [
                row("tensorflow", "failed", "ValueError: a", trained=[9]),
                row("torch", "failed", "TypeError: b", code_cells_gated=[{"cell": 9, "backend": "tensorflow"}]),
            ],
            "",
            "backend-specific",
            "fails on tensorflow",
        ),
        # The environment stopped every run: what is missing is named, and the file was not judged.
        (
            [row(name, "failed", "cell 7: ModuleNotFoundError: No module named 'pydot'") for name in ("torch", "jax")],
            "",
            "not verified",
            "not verified (package missing: pydot) on torch, jax",
        ),
        (
            [
                row("torch", "failed", "cell 4: Exception: URL fetch failure on https://host/imdb.npz: None -- x"),
                row("jax", "failed", "cell 4: ModuleNotFoundError: No module named 'google.colab'"),
            ],
            "",
            "not verified",
            "dataset missing: https://host/imdb.npz; package missing: google.colab",
        ),
        (
            [
                row(
                    name,
                    "failed",
                    "cell 35: ImportError: You must install pydot (`pip install pydot`) for `plot_model`",
                )
                for name in ("torch", "jax")
            ],
            "",
            "not verified",
            "not verified (package missing: pydot)",
        ),
        # With --keep-going, a later cell that fails on its own (not for want of the missing package) is judged.
        (
            [
                row(
                    name,
                    "failed",
                    "cell 8: ModuleNotFoundError: No module named 'regex'",
                    failed_cells=[
                        {"cell": 8, "error": "ModuleNotFoundError: No module named 'regex'"},
                        {"cell": 9, "error": "NameError: name 'regex' is not defined", "after_earlier_error": True},
                        {"cell": 30, "error": "ValueError: shapes differ", "after_earlier_error": False},
                    ],
                )
                for name in ("torch", "jax")
            ],
            "",
            "fails everywhere",
            "the same error on torch, jax",
        ),
        # The book's chapter 13: `!wget` found no network, the next cell no file; every later one fails after it.
        (
            [
                row(
                    name,
                    "failed",
                    "cell 9: FileNotFoundError: [Errno 2] No such file or directory: 'jena_climate_2009_2016.csv' "
                    "(after a failed shell command in cell 8: !wget https://host/jena_climate_2009_2016.csv.zip "
                    "exited 4)",
                    failed_cells=[
                        {"cell": 9, "error": "FileNotFoundError: [Errno 2] No such file or directory"},
                        {"cell": 10, "error": "NameError: name 'lines' is not defined", "after_earlier_error": True},
                    ],
                )
                for name in ("torch", "jax")
            ],
            "",
            "not verified",
            "not verified (dataset missing: https://host/jena_climate_2009_2016.csv.zip) on torch, jax",
        ),
        # The book's chapter 7 (pydot, then TensorBoard) and chapter 9 (kagglehub, then the files it would have
        # fetched): every failing cell is the environment's.
        (
            [
                row(
                    name,
                    "failed",
                    "cell 35: ImportError: You must install pydot (`pip install pydot`) for `plot_model` to work.",
                    failed_cells=[
                        {"cell": 35, "error": "ImportError: You must install pydot (`pip install pydot`)"},
                        {"cell": 66, "error": "TBNotInstalledError: TensorBoard is not installed, missing tf.summary"},
                        {
                            "cell": 70,
                            "error": "FileNotFoundError: [Errno 2] No such file or directory: 'train/cat.0.jpg'",
                        },
                    ],
                )
                for name in ("torch", "jax")
            ],
            "",
            "not verified",
            "not verified (package missing: pydot) on torch, jax",
        ),
        # The book's chapter 8: kagglehub missing, then no images in the folder it would have filled, then no model
        # that the cells training on them would have saved.
        (
            [
                row(
                    name,
                    "failed",
                    "cell 20: ModuleNotFoundError: No module named 'kagglehub'",
                    failed_cells=[
                        {"cell": 20, "error": "ModuleNotFoundError: No module named 'kagglehub'"},
                        {
                            "cell": 23,
                            "error": "NameError: name 'kagglehub' is not defined",
                            "after_earlier_error": True,
                        },
                        {
                            "cell": 29,
                            "error": "ValueError: No images found in directory dogs_vs_cats_small/train. Allowed "
                            "formats: ('.bmp', '.gif', '.jpeg', '.jpg', '.png')",
                        },
                        {
                            "cell": 39,
                            "error": "ValueError: File not found: filepath=convnet_from_scratch.keras. Please ensure "
                            "the file is an accessible `.keras` zip file.",
                        },
                    ],
                )
                for name in ("torch", "jax")
            ],
            "",
            "not verified",
            "not verified (package missing: kagglehub) on torch, jax",
        ),
        # keras-io's training guide: pydot stopped torch and tensorflow, jax failed on its own first: nothing passed.
        (
            [
                row("torch", "failed", "ImportError: You must install pydot (`pip install pydot`) for `plot_model`"),
                row(
                    "tensorflow", "failed", "ImportError: You must install pydot (`pip install pydot`) for `plot_model`"
                ),
                row("jax", "failed", "ValueError: Triggering __jax_array__() during abstractification"),
            ],
            "",
            "not verified",
            "not verified (package missing: pydot) on torch, tensorflow; fails on jax: failed (ValueError: Triggering",
        ),
        (
            [row("torch", "passed"), row("jax", "failed", "ModuleNotFoundError: No module named 'jax_extra'")],
            "",
            "backend-specific",
            "passes on torch",
        ),
    ],
)
def test_each_file_gets_one_verdict(rows, imports, verdict, detail):
    found = file_verdict(rows, imports)
    assert found.kind == verdict and detail in found.detail, found


def test_a_gated_cell_that_ran_under_none_of_its_backends_is_named():
    gated = [{"cell": 48, "backend": "tensorflow"}, {"cell": 50, "backend": "torch"}]
    rows = [row("torch", "passed", code_cells_gated=gated[:1]), row("jax", "passed", code_cells_gated=gated)]
    assert cells_run_nowhere("ch.ipynb", rows, ["torch", "jax"]) == [
        "ch.ipynb: cell 48: tensorflow only, tensorflow not verified: it ran nowhere"
    ]
    stopped = [row("torch", "failed", "E: x", failed_cell=12), row("jax", "passed", code_cells_gated=gated[1:])]
    assert cells_run_nowhere("ch.ipynb", stopped, ["torch", "jax"]) == [
        "ch.ipynb: cell 50: torch only, torch's run failed before it: it ran nowhere"
    ]
    assert cells_run_nowhere("ch.ipynb", [row("torch", "failed", failed_cell=50), *stopped[1:]], ["torch", "jax"]) == []


def payload(smoke: bool = False) -> dict:
    cells = [
        row(
            "torch",
            "passed",
            last_line="test_acc: 0.98",
            code_cells_ran=66,
            trained=[17],
            code_cells_gated=[{"cell": 107, "backend": "tensorflow"}],
            code_cells_skipped=[{"cell": 2, "reason": "shell install: !pip install keras", "line": 1}],
        ),
        row("jax", "wrong backend", "ran torch, not jax", backend_used="torch", code_cells_ran=66),
        row("tensorflow", "pinned", "pinned to torch (cell 3), not tensorflow", backend_used="torch"),
    ]
    return {
        "backends": ["torch", "jax", "tensorflow"],
        "files": ["f.ipynb"],
        "smoke": smoke,
        "compare_outputs": "all",
        "rtol": 0.0,
        "atol": 0.012,
        "cells": cells,
        "verdicts": {"f.ipynb": "backend-specific"},
        "verdict_details": {"f.ipynb": "passes on torch; fails on jax: wrong backend"},
        "warnings": ["f.ipynb: sets KERAS_BACKEND=torch (cell 3)"],
        "passed": False,
        "created": "2026-12-02T08:00:00+00:00",
    }


def test_junit_fails_a_run_on_the_wrong_backend_and_skips_a_pinned_one():
    suite = junit.document(payload()).getroot().find("testsuite")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert cases["jax"].find("failure").get("type") == "wrong backend"
    assert cases["tensorflow"].find("skipped").get("message").startswith("pinned: pinned to torch")
    assert cases["torch"].find("failure") is None
    used = {name: case.find("properties/property[@name='backend_used']") for name, case in cases.items()}
    assert used["torch"].get("value") == "torch" and used["jax"].get("value") == "torch"
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "1")
    assert suite.get("name") == "multibackend verify"
    smoke = junit.document(payload(smoke=True)).getroot().find("testsuite")
    assert smoke.get("name") == "multibackend verify (smoke)"
    assert smoke.find("properties/property[@name='smoke']").get("value") == "true"
    ElementTree.fromstring(ElementTree.tostring(junit.document(payload()).getroot()))


def test_the_matrix_leads_with_verdicts_and_shows_what_ran():
    markdown = markdown_matrix(payload())
    assert markdown.index("Verdicts:") < markdown.index("Matrix")
    assert "| f.ipynb | **backend-specific** | passes on torch; fails on jax: wrong backend |" in markdown
    assert "passed (1.0 s) · 66 cells ran, 1 gated, 1 skipped" in markdown
    assert "WRONG BACKEND (1.0 s): ran torch, not jax" in markdown
    assert "| f.ipynb | test_acc: 0.98 | - | - |" in markdown
    assert "cell 2, line 1: shell install: !pip install keras" in markdown
    assert markdown.startswith("Full run") and markdown_matrix(payload(smoke=True)).startswith("Smoke run")
    page = html_matrix(payload(smoke=True))
    assert 'class="wrong-backend"' in page and 'class="backend-specific"' in page and "Smoke run" in page


def test_a_smoke_slice_reads_the_full_length_written_in_course_code_as_its_own():
    images = np.arange(60000 * 4, dtype=np.uint8).reshape(60000, 2, 2)
    part = dataset_slice(images, 1024)
    flat = (part.reshape((60000, 2 * 2)).astype("float32") / 255).reshape(60000, 4)
    assert flat.shape == (1024, 4) and np.array_equal(np.asarray(flat) * 255, images[:1024].reshape(1024, 4))
    assert part.reshape(-1, 4).shape == (1024, 4) and np.reshape(part, (60000, 4)).shape == (1024, 4)
    assert part[:500].reshape((500, 4)).shape == (500, 4)
    with pytest.raises(ValueError):
        part.reshape((1000, 4))  # any other length is NumPy's error, as before


def test_a_cell_not_run_under_every_backend_is_listed_once_with_its_runs():
    from multibackend.verify.render import markdown_matrix

    skipped = [{"cell": 3, "line": 1, "reason": "installs packages (!pip install keras-hub)"}]
    backends = ["torch", "tensorflow", "jax"]
    payload = {
        "backends": backends,
        "files": ["ch.ipynb"],
        "cells": [
            {**row(name, "passed"), "file": "ch.ipynb", "seconds": 1.0, "code_cells_skipped": skipped}
            for name in backends
        ],
        "warnings": [],
        "passed": True,
        "created": "2026-12-07T07:00:00+00:00",
    }
    listed = [line for line in markdown_matrix(payload).splitlines() if "!pip install" in line]
    assert listed == [
        "- ch.ipynb: cell 3, line 1: installs packages (!pip install keras-hub) (under torch, tensorflow, jax)"
    ]
