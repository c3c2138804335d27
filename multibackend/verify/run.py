"""`multibackend verify`: run course scripts and notebooks under every backend.

Each (file, backend) cell runs in a fresh process with `KERAS_BACKEND` set, in
a fresh working folder, under a time limit. Code that imports TensorFlow,
PyTorch or JAX directly is flagged: it cannot be portable across backends.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from multibackend.results import write_json_atomic
from multibackend.runtime import templating
from multibackend.runtime.backend import BACKENDS, INSTALL_HINTS, installed_backends
from multibackend.runtime.children import run_child
from multibackend.runtime.errors import UsageError, last_line

SUFFIXES = (".py", ".ipynb")
# Folders of tools, environments and caches: never course code to verify.
SKIPPED_FOLDERS = {".git", ".nox", ".venv", "venv", ".tox", "__pycache__", ".ipynb_checkpoints", "site-packages",
                   "node_modules", ".pytest_cache", ".ruff_cache", "build", "dist"}  # fmt: skip
FRAMEWORKS = ("tensorflow", "torch", "jax", "jaxlib")
OFFLINE_HINT = (
    " (hint: no network; add --offline-datasets on to serve keras.datasets.mnist from the verified local copy)"
)


@dataclass
class Cell:
    """The outcome of one file under one backend."""

    file: str
    backend: str
    status: str  # passed | failed | timed out | not installed
    seconds: float
    error: str = ""


def collect_files(paths: list[str]) -> list[Path]:
    """Expands folders to the `.py` and `.ipynb` files in them; rejects anything else."""
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file()
                           and not SKIPPED_FOLDERS & set(p.relative_to(path).parts[:-1]))  # fmt: skip
            if not found:
                raise UsageError(f"{path}: no .py or .ipynb files in this folder")
            files.extend(found)
        elif path.suffix not in SUFFIXES:
            raise UsageError(f"{path}: not a Python script (.py) or notebook (.ipynb)")
        else:
            files.append(path)
    return files


def source_of(path: Path) -> str:
    """The Python code of a script, or of a notebook's code cells (magics dropped)."""
    try:
        if path.suffix != ".ipynb":
            return path.read_text()
        notebook = json.loads(path.read_text())
        cells = [cell for cell in notebook["cells"] if cell.get("cell_type") == "code"]
        sources = ["".join(cell["source"]) if isinstance(cell["source"], list) else str(cell["source"])
                   for cell in cells]  # fmt: skip
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise UsageError(f"{path}: unreadable ({error.strerror or error})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"{path}: not a readable notebook ({type(error).__name__}: {error})") from None
    lines = []
    for text in sources:
        lines += [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def portability_warnings(path: Path) -> list[str]:
    """Lines that import a backend framework directly: the code is not backend-agnostic."""
    try:
        tree = ast.parse(source_of(path))
    except SyntaxError as error:
        return [f"{path}: cannot parse ({error.msg}, line {error.lineno})"]
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in FRAMEWORKS:
                found.append(f"{path}: imports {name} (line {node.lineno}): not portable across Keras backends")
    return found


def run_cell(path: Path, backend: str, timeout: float, offline: bool) -> Cell:
    """Runs one file under one backend in a fresh process and working folder."""
    command = [sys.executable, "-m", "multibackend.verify.child", str(path.resolve())]
    if offline:
        command.insert(3, "--offline-datasets")
    env = {**os.environ, "KERAS_BACKEND": backend, "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    with tempfile.TemporaryDirectory(prefix="multibackend-verify-") as workdir:
        # Its own process group: a timeout also ends a notebook's kernel and anything the script started.
        finished = run_child(command, timeout=timeout, env=env, cwd=workdir)
    if finished.timed_out:
        return Cell(str(path), backend, "timed out", finished.seconds, f"no result after {timeout:g} s")
    if finished.returncode == 0:
        return Cell(str(path), backend, "passed", finished.seconds)
    return Cell(str(path), backend, "failed", finished.seconds, first_error_line(finished.stderr, offline))


def first_error_line(stderr: str, offline: bool) -> str:
    """The line that names the error: the last line of a traceback."""
    line = last_line(stderr, "failed with no error output")
    if not offline and ("mnist.npz" in stderr or "URL fetch failure" in stderr):
        line += OFFLINE_HINT
    return line


def verify(
    paths: list[str],
    backends: list[str] | None = None,
    *,
    timeout: float = 600,
    offline: bool = False,
    out_dir: str = "results",
    progress=print,
) -> dict:
    """Runs every file under every backend; writes `verify.json` and `verify.md` to `out_dir`.

    Returns:
        The payload: cells, warnings and `passed`.
    """
    if timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    files = collect_files(paths)
    chosen = list(backends or BACKENDS)
    warnings = [warning for path in files for warning in portability_warnings(path)]
    for warning in warnings:
        progress(f"warning: {warning}")
    available = set(installed_backends())
    if not available & set(chosen):
        raise UsageError(f"none of the backends {', '.join(chosen)} is installed here: nothing would be verified")
    cells = []
    for path in files:
        for backend in chosen:
            if backend not in available:  # not a failure of the script: it was not run
                cell = Cell(str(path), backend, "not installed", 0.0, INSTALL_HINTS[backend])
            else:
                cell = run_cell(path, backend, timeout, offline)
            progress(
                f"{cell.status:>9}  {cell.seconds:6.1f} s  {backend:<10} {path}"
                + (f"  {cell.error}" if cell.error else "")
            )
            cells.append(cell)
    payload = {
        "backends": chosen,
        "files": [str(path) for path in files],
        "offline_datasets": offline,
        "timeout_seconds": timeout,
        "cells": [asdict(cell) for cell in cells],
        "warnings": warnings,
        "passed": all(cell.status in ("passed", "not installed") for cell in cells),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    write_json_atomic(Path(out_dir) / "verify.json", payload)
    (Path(out_dir) / "verify.md").write_text(markdown_matrix(payload) + "\n")
    return payload


def _cell_text(cell: dict) -> str:
    if cell["status"] == "not installed":
        return f"not installed ({cell['error']})"
    if cell["status"] == "passed":
        return f"passed ({cell['seconds']:.1f} s)"
    if cell["status"] == "timed out":
        return f"TIMED OUT ({cell['seconds']:.0f} s)"
    return f"FAILED ({cell['seconds']:.1f} s): {cell['error']}"


def markdown_matrix(payload: dict) -> str:
    """The file x backend matrix as a Markdown table, with the portability warnings under it."""
    context = {**payload, "cells": {(cell["file"], cell["backend"]): cell for cell in payload["cells"]},
               "cell_text": _cell_text}  # fmt: skip
    return templating.render("multibackend.verify", "verify.md.j2", context).rstrip("\n")
