"""Adding a backend is one folder: a throwaway fourth one (Keras's NumPy backend, inference only), planted in a copy
of the package, is listed, chosen and verified everywhere without a change elsewhere."""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO

NUMPY_BACKEND = '''"""A throwaway backend: Keras on NumPy (inference only; no fit, no framework loop)."""

PACKAGE = "numpy"
INSTALL_HINT = "pip install numpy"
COLOR = "#4d77cf"
MODULES = ()  # NumPy is every course's, not a framework a course file would import instead of Keras
USES_MODULES = ("jax", "jaxlib")  # Keras's NumPy backend imports JAX's lax
STEPS_PER_EXECUTION_COMPILED = False
LOOP_TRAINS_LAYER_STATE = False
PASSED_ENVIRONMENT = ()


def environment(device, chosen):
    return {}


def gpu_available():
    return False


def gpu_details():
    return {}


def variable_device(value):
    return "cpu"


def set_tf32(enabled):
    pass


def tf32_enabled():
    return False
'''

PREDICT_SCRIPT = """import keras
import numpy as np

model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
print("rows:", len(model.predict(np.ones((5, 3), "float32"), verbose=0)), "backend:", keras.backend.backend())
"""


@pytest.fixture(scope="module")
def planted(tmp_path_factory) -> Path:
    """A copy of the package with a `numpy` folder in `backends/`, and nothing else changed."""
    root = tmp_path_factory.mktemp("planted")
    shutil.copytree(REPO / "multibackend", root / "multibackend", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "multibackend" / "backends" / "numpy").mkdir()
    (root / "multibackend" / "backends" / "numpy" / "__init__.py").write_text(NUMPY_BACKEND)
    return root


def run_planted(planted: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(planted)}
    env.pop("KERAS_BACKEND", None)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False
    )


def test_the_folder_alone_lists_it_after_the_others_and_gives_it_no_loop_and_no_bench(planted, tmp_path):
    listed = run_planted(
        planted,
        "-c",
        "import multibackend, json; from multibackend.backends import NAMES, has_loop;"
        "from multibackend.bench.worker import TRAINERS;"
        "print(json.dumps([multibackend.__file__, NAMES, has_loop('numpy'), TRAINERS['numpy']]))",
        cwd=tmp_path,
    )
    assert listed.returncode == 0, listed.stderr
    where, names, loop, trainers = json.loads(listed.stdout)
    assert where.startswith(str(planted))  # the planted copy, not this checkout
    assert names == ["torch", "tensorflow", "jax", "numpy"] and loop is False
    assert trainers == ["keras-fit", "keras-fit-measured", "run-mnist"]  # no framework loop, no native baseline


def test_the_noxfile_finds_it_as_the_package_does(planted):
    # The noxfile reads the folders from source (it runs before the project is installed): its function, run here.
    tree = ast.parse((REPO / "noxfile.py").read_text())
    [function] = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "backend_names"]
    scope = {"ast": ast, "Path": Path, "BACKENDS_FOLDER": None, "UNORDERED": 1000}
    exec(compile(ast.Module([function], []), "noxfile.py", "exec"), scope)  # noqa: S102 - the project's own source
    assert scope["backend_names"](planted / "multibackend" / "backends") == ("torch", "tensorflow", "jax", "numpy")


def test_verify_runs_a_course_file_under_it_and_proves_it_ran(planted, tmp_path):
    script = tmp_path / "predict.py"
    script.write_text(PREDICT_SCRIPT)
    out = tmp_path / "out"
    result = run_planted(
        planted, "-m", "multibackend", "verify", str(script), "--backends", "numpy", "--out", str(out), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [cell] = json.loads((out / "verify.json").read_text())["cells"]
    assert (cell["backend"], cell["status"], cell["backend_used"]) == ("numpy", "passed", "numpy")
    # The file contracts name the backends by the folders too: a merge reads the file back against its schema.
    merged = run_planted(
        planted, "-m", "multibackend", "verify", "merge", str(out), "--out", str(tmp_path / "m"), cwd=tmp_path
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert json.loads((tmp_path / "m" / "verify.json").read_text())["backends"] == ["numpy"]


def test_a_backend_without_a_loop_refuses_the_fast_path_in_one_line(planted, tmp_path):
    result = run_planted(
        planted, "-m", "multibackend", "run", "mnist", "--backend", "numpy", "--trainer", "loop", cwd=tmp_path
    )
    assert result.returncode == 2 and "numpy backend has no framework loop" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
