"""`multibackend verify` tells what really ran: the backend, the cells, nothing installed, smoke runs labelled.

One verify run over small course files of our own, each a habit of real Keras 3
courses (a notebook that pins KERAS_BACKEND, `!pip install` cells, `%%backend`
gated cells, a file that fails everywhere, one that fails on one backend), under
every backend; the tests below read its results.
"""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from multibackend.runtime.backend import BACKENDS, installed_backends

from ..conftest import QUICK_BACKEND, REPO, run_cli
from ..helpers import write_notebook

COURSE = REPO / "scripts" / "course"
PROBE_PACKAGE = "mb_install_probe"


def probe_wheel(folder: Path) -> Path:
    """A tiny wheel that pip installs offline: proof material for what an install cell would change."""
    wheel = folder / f"{PROBE_PACKAGE}-0.1-py3-none-any.whl"
    info = f"{PROBE_PACKAGE}-0.1.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{PROBE_PACKAGE}/__init__.py", "INSTALLED = True\n")
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {PROBE_PACKAGE}\nVersion: 0.1\n")
        archive.writestr(
            f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        )
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def installed_packages(python: str) -> list[str]:
    """Every distribution an interpreter sees (its site-packages and its user site), as name==version."""
    code = "import importlib.metadata as m; print(sorted(f\"{d.metadata['Name']}=={d.version}\" for d in m.distributions()))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=120).stdout


MACHINE_PYTHON = str(Path(sys.base_prefix) / "bin" / "python3")


def course_files(folder: Path, markers: Path) -> list[Path]:
    """The course files; only two import Keras (on torch that import alone takes 11 s here)."""
    markers.mkdir()
    gated = [
        f"%%backend {name}\nassert keras.backend.backend() == {name!r}\nopen({str(markers / name)!r}, 'w').write('ran')"
        for name in BACKENDS
    ]
    wheel = probe_wheel(folder)
    return [
        write_notebook(
            folder / "pinned_and_gated.ipynb",
            'import os\nos.environ["KERAS_BACKEND"] = "jax"',
            'import keras\nprint("backend:", keras.backend.backend())',
            *gated,
        ),
        write_notebook(
            folder / "installs.ipynb",
            f"!pip install --no-index {wheel}",
            f"%pip install --no-index {wheel}",
            "import os, sys\nversion = !pip --version\nassert sys.prefix in version[0], (sys.prefix, version)\n"
            "assert os.environ['HOME'].startswith(os.getcwd()), 'the run has a home of its own'",
        ),
        write_script(folder / "numpy_inf.py", "import numpy as np\nprint(np.Inf)\n"),
        write_script(
            folder / "not_on_jax.py",
            "import keras\nif keras.backend.backend() == 'jax':\n"
            "    raise RuntimeError('this course step breaks on jax')\nprint('fine')\n",
        ),
    ]


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def every_backend(tmp_path_factory):
    """One verify run of the course files under every backend, with the installed packages before and after."""
    if set(installed_backends()) != set(BACKENDS):
        pytest.skip("needs torch, tensorflow and jax")
    folder = tmp_path_factory.mktemp("course")
    files = course_files(folder, folder / "markers")
    before = {python: installed_packages(python) for python in (sys.executable, MACHINE_PYTHON)}
    result = run_cli(
        "verify",
        *map(str, files),
        "--jobs",
        "2",
        "--offline-datasets",
        "on",
        "--out",
        str(folder / "out"),
        "--junit-xml",
        str(folder / "junit.xml"),
        timeout=900,
    )
    after = {python: installed_packages(python) for python in (sys.executable, MACHINE_PYTHON)}
    payload = json.loads((folder / "out" / "verify.json").read_text())
    rows = {(Path(cell["file"]).name, cell["backend"]): cell for cell in payload["cells"]}
    return {"result": result, "payload": payload, "rows": rows, "before": before, "after": after, "folder": folder}


@pytest.mark.cross_backend
def test_a_file_that_pins_its_backend_runs_each_backend_as_asked(every_backend):
    for backend in BACKENDS:
        row = every_backend["rows"]["pinned_and_gated.ipynb", backend]
        assert row["status"] == "passed" and row["backend_used"] == backend, row
        assert row["framework_version"] and row["pins"] == ([{"value": "jax", "cell": 1}] if backend != "jax" else [])
    assert any(
        "pinned_and_gated.ipynb: sets KERAS_BACKEND=jax (cell 1); each backend ran as asked" in warning
        for warning in every_backend["payload"]["warnings"]
    )


@pytest.mark.cross_backend
def test_gated_cells_run_under_their_own_backend_only(every_backend):
    for backend in BACKENDS:
        row = every_backend["rows"]["pinned_and_gated.ipynb", backend]
        assert row["code_cells_ran"] == 3  # the pin, the import and this backend's own cell
        others = sorted((gated["cell"], gated["backend"]) for gated in row["code_cells_gated"])
        assert others == [(index + 3, name) for index, name in enumerate(BACKENDS) if name != backend]
    assert sorted(path.name for path in (every_backend["folder"] / "markers").iterdir()) == sorted(BACKENDS)
    assert every_backend["payload"]["verdicts"][str(every_backend["folder"] / "pinned_and_gated.ipynb")] == "portable"


@pytest.mark.cross_backend
def test_install_cells_are_skipped_and_change_no_interpreter(every_backend):
    for python, packages in every_backend["before"].items():
        assert every_backend["after"][python] == packages, f"{python}: installed packages changed"
        assert PROBE_PACKAGE not in packages
    for backend in BACKENDS:
        row = every_backend["rows"]["installs.ipynb", backend]
        assert row["status"] == "passed", row  # `!pip --version` ran, with this environment's pip first on PATH
        assert [
            (item["cell"], item.get("line"), item["reason"].split(":")[0]) for item in row["code_cells_skipped"]
        ] == [(1, 1, "shell install"), (2, 1, "shell install")]
        assert row["code_cells_ran"] == 1


@pytest.mark.cross_backend
def test_verdicts_tell_a_broken_file_from_a_backend_difference(every_backend):
    verdicts = {Path(file).name: verdict for file, verdict in every_backend["payload"]["verdicts"].items()}
    assert verdicts == {
        "pinned_and_gated.ipynb": "portable",
        "installs.ipynb": "portable",
        "numpy_inf.py": "fails everywhere",
        "not_on_jax.py": "backend-specific",
    }
    for backend in BACKENDS:
        row = every_backend["rows"]["numpy_inf.py", backend]
        assert row["status"] == "failed" and "np.Inf" in row["error"] and row["code_cells_ran"] == 1
    assert every_backend["rows"]["not_on_jax.py", "jax"]["error"] == "RuntimeError: this course step breaks on jax"
    assert every_backend["result"].returncode == 1
    markdown = (every_backend["folder"] / "out" / "verify.md").read_text()
    assert markdown.index("**fails everywhere**") < markdown.index("Matrix")


def test_with_respect_backend_pins_a_pinned_run_is_never_a_pass(tmp_path):
    pinned_to = next((name for name in installed_backends() if name != QUICK_BACKEND), None)
    if pinned_to is None:
        pytest.skip("needs a second backend")
    notebook = write_notebook(
        tmp_path / "pinned.ipynb",
        f'import os\nos.environ["KERAS_BACKEND"] = {pinned_to!r}',
        "import keras\nprint(keras.backend.backend())",
    )
    out = tmp_path / "out"
    result = run_cli("verify", str(notebook), "--backends", QUICK_BACKEND, "--respect-backend-pins", "--out", str(out))
    [row] = json.loads((out / "verify.json").read_text())["cells"]
    assert row["status"] == "pinned" and row["backend_used"] == pinned_to, row
    assert row["error"] == f"pinned to {pinned_to} (cell 1), not {QUICK_BACKEND}"
    assert json.loads((out / "verify.json").read_text())["verdicts"][str(notebook)] == "single-backend by design"
    assert result.returncode == 0 and "pinned" in result.stdout


def test_with_shell_run_an_install_cell_installs_into_this_environment(tmp_path):
    # The other side of the install test: the check above would see a change, since one happens when asked for.
    wheel = probe_wheel(tmp_path)
    notebook = write_notebook(
        tmp_path / "install.ipynb",
        f"!pip install -q --no-index {wheel}",
        f"import {PROBE_PACKAGE}\nassert {PROBE_PACKAGE}.INSTALLED",
    )
    before = installed_packages(sys.executable)
    try:
        result = run_cli(
            "verify", str(notebook), "--backends", QUICK_BACKEND, "--shell", "run", "--out", str(tmp_path / "o")
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{PROBE_PACKAGE}==0.1" in installed_packages(sys.executable) and PROBE_PACKAGE not in before
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", PROBE_PACKAGE], capture_output=True)
    assert installed_packages(sys.executable) == before


SMOKE_NOTEBOOK = (
    "import keras, numpy as np\nfrom keras.datasets import mnist\n"
    "(x, y), (x_test, y_test) = mnist.load_data()\nx = x.reshape((60000, 784)).astype('float32') / 255",
    "class Batches(keras.callbacks.Callback):\n    seen = 0\n    def on_train_batch_end(self, batch, logs=None):\n"
    "        Batches.seen += 1\n"
    "model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(10, activation='softmax')])\n"
    "model.compile('rmsprop', 'sparse_categorical_crossentropy')\n"
    "history = model.fit(x, y, epochs=20, batch_size=32, verbose=0, callbacks=[Batches()])\n"
    "predicted = model.predict(x_test.reshape((10000, 784)) / 255, verbose=0)\n"
    "print(f'epochs {len(history.history[\"loss\"])}, batches {Batches.seen}, predictions {len(predicted)}')",
)


@pytest.mark.slow
def test_a_smoke_run_caps_training_and_says_so(tmp_path):
    # Our notebook shows the cap: 20 epochs of 16 batches each, and predictions for every test image.
    # The course's MNIST notebook (20 epochs, misclassified digits from predict: minutes) must pass in smoke mode too.
    own = write_notebook(tmp_path / "smoke.ipynb", *SMOKE_NOTEBOOK)
    course = [COURSE / "mnist_sparse.ipynb"]
    out = tmp_path / "out"
    result = run_cli(
        "verify",
        str(own),
        *map(str, course),
        "--backends",
        QUICK_BACKEND,
        "--smoke",
        "--jobs",
        "1",
        "--offline-datasets",
        "on",
        "--out",
        str(out),
        "--junit-xml",
        str(tmp_path / "j.xml"),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    payload = json.loads((out / "verify.json").read_text())
    assert payload["smoke"] is True and "Smoke run" in (out / "verify.md").read_text()
    rows = {Path(cell["file"]).name: cell for cell in payload["cells"]}
    assert rows["smoke.ipynb"]["last_line"] == "epochs 20, batches 320, predictions 10000"
    for name in ("mnist_sparse.ipynb",):
        assert rows[name]["status"] == "passed" and rows[name]["backend_used"] == QUICK_BACKEND
        assert rows[name]["trained"] and "test_accuracy" in rows[name]["last_line"]
    assert "(smoke)" in (tmp_path / "j.xml").read_text()


def test_a_smoke_sample_serves_the_first_images_and_reads_the_full_length_as_its_own(tmp_path):
    script = write_script(
        tmp_path / "lengths.py",
        "from keras.datasets import mnist\n"
        "(x, y), (x_test, y_test) = mnist.load_data()\n"
        "flat = x.reshape((60000, 28 * 28)).astype('float32') / 255\n"
        "assert (len(x), len(y), len(x_test), len(y_test), flat.shape) == (1024, 1024, 512, 512, (1024, 784))\n",
    )
    out = tmp_path / "out"
    result = run_cli(
        "verify",
        str(script),
        "--backends",
        QUICK_BACKEND,
        "--smoke",
        "--smoke-sample",
        "1024,512",
        "--offline-datasets",
        "on",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((out / "verify.json").read_text())["smoke_sample"] == [1024, 512]


def test_keep_going_runs_every_cell_and_reports_each_failing_one(tmp_path):
    # One missing package hid every later cell of 14 of the book's 16 chapters: with --keep-going they run, and a
    # cell that fails only for want of a name the failed cell would have bound says so. Running on past a failed
    # cell is the kernel's business, not the backend's: this runs once.
    notebook = write_notebook(
        tmp_path / "chapter.ipynb",
        "import keras\nprint('first')",
        "import pydot_that_is_not_installed\ngraph = 1",
        "print(graph)",
        "ratio = 1 / 0",
        "print('last cell ran')",
    )
    runs = {}
    for mode in ("stop", "keep-going"):
        out = tmp_path / mode
        extra = ["--keep-going"] if mode == "keep-going" else []
        result = run_cli("verify", str(notebook), "--backends", QUICK_BACKEND, "--out", str(out), *extra)
        assert result.returncode == 1, result.stdout + result.stderr
        payload = json.loads((out / "verify.json").read_text())
        [runs[mode]] = payload["cells"]
    assert runs["stop"]["code_cells_ran"] == 2 and runs["stop"]["failed_cells"] == []
    going = runs["keep-going"]
    assert going["status"] == "failed" and going["code_cells_ran"] == 5 and going["failed_cell"] == 2
    assert [(c["cell"], c["error"].split(":")[0], c["after_earlier_error"]) for c in going["failed_cells"]] == [
        (2, "ModuleNotFoundError", False),
        (3, "NameError", True),
        (4, "ZeroDivisionError", False),
    ]
    assert going["error"].endswith("(and 2 more failing cells, 1 only after an earlier error)"), going["error"]
