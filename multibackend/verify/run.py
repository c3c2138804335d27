"""`multibackend verify`: run course scripts and notebooks under every backend, and compare their outputs.

Each (file, backend) cell runs in a fresh process with `KERAS_BACKEND` set, in
a fresh working folder, under a time limit; several cells may run side by side
(`jobs`). A notebook that carries stored outputs is also compared, cell by cell,
with what it prints now (`outputs`: nbval's conventions, numbers within a
tolerance). Code that imports TensorFlow, PyTorch or JAX directly is flagged:
it cannot be portable across backends.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from multibackend.results import write_json_atomic
from multibackend.runtime import templating
from multibackend.runtime.backend import BACKENDS, INSTALL_HINTS, installed_backends
from multibackend.runtime.children import end_all_children, run_child
from multibackend.runtime.cores import thread_limits
from multibackend.runtime.errors import OutputError, UsageError, last_line
from multibackend.verify import junit, outputs
from multibackend.verify.child import ERROR_MARK

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
    status: str  # passed | failed | output differs | timed out | not installed
    seconds: float
    error: str = ""
    differences: list[str] = field(default_factory=list)  # one line per cell whose output differs
    last_line: str = ""  # the last printed line that holds a number


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


@dataclass(frozen=True)
class OutputCheck:
    """How notebook outputs are compared: `mode` (all | marked | off) and the tolerance for numbers."""

    mode: str = "all"
    rtol: float = outputs.DEFAULT_RTOL
    atol: float = outputs.DEFAULT_ATOL


def stored_notebook(path: Path) -> dict | None:
    """The notebook at `path` when it carries outputs to compare with, else None."""
    if path.suffix != ".ipynb":
        return None
    notebook = json.loads(path.read_text())
    return notebook if outputs.has_stored_outputs(notebook) else None


def run_cell(
    path: Path, backend: str, timeout: float, offline: bool, check: OutputCheck = OutputCheck(), side_by_side: int = 1
) -> Cell:
    """Runs one file under one backend in a fresh process and working folder; compares a notebook's outputs.

    `side_by_side` cells run at once: each child gets its share of the cores (see `runtime.cores`).
    """
    stored = stored_notebook(path) if check.mode != "off" else None
    command = [sys.executable, "-m", "multibackend.verify.child", str(path.resolve())]
    if offline:
        command.insert(3, "--offline-datasets")
    env = {**os.environ, **thread_limits(side_by_side), "KERAS_BACKEND": backend, "MPLBACKEND": "Agg",
           "PYTHONUNBUFFERED": "1"}  # fmt: skip
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["JAX_PLATFORMS"] = env.get("JAX_PLATFORMS", "cpu")
    with tempfile.TemporaryDirectory(prefix="multibackend-verify-") as workdir:
        executed = Path(workdir) / ".multibackend-executed.ipynb"
        if stored is not None:
            command[3:3] = ["--executed", str(executed)]
        # Its own process group: a timeout also ends a notebook's kernel and anything the script started.
        finished = run_child(command, timeout=timeout, env=env, cwd=workdir)
        new = json.loads(executed.read_text()) if stored is not None and executed.is_file() else None
    printed = outputs.last_line_with_a_number(outputs.normalize(finished.stdout))
    if finished.timed_out:
        return Cell(str(path), backend, "timed out", finished.seconds, f"no result after {timeout:g} s")
    if finished.returncode != 0:
        error = first_error_line(finished.stderr, offline)
        return Cell(str(path), backend, "failed", finished.seconds, error, last_line=printed)
    if new is None:
        return Cell(str(path), backend, "passed", finished.seconds, last_line=printed)
    mismatches = outputs.compare_notebooks(stored, new, mode=check.mode, rtol=check.rtol, atol=check.atol)
    printed = outputs.last_printed_line(new)
    if mismatches:
        summaries = [mismatch.summary() for mismatch in mismatches]
        return Cell(str(path), backend, "output differs", finished.seconds, summaries[0], summaries, printed)
    return Cell(str(path), backend, "passed", finished.seconds, last_line=printed)


def first_error_line(stderr: str, offline: bool) -> str:
    """The line that names the error: the notebook child's marked line, else the last line of a traceback."""
    marked = [line for line in stderr.splitlines() if line.startswith(ERROR_MARK)]
    line = marked[-1].removeprefix(ERROR_MARK) if marked else last_line(stderr, "failed with no error output")
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
    check: OutputCheck = OutputCheck(),
    jobs: int = 1,
    junit_xml: str | None = None,
    progress=print,
) -> dict:
    """Runs every file under every backend; writes `verify.json`, `verify.md` and `verify.html` to `out_dir`.

    Args:
        paths: Scripts, notebooks and folders holding them.
        backends: The backends to run under (default: all three).
        timeout: Seconds per file and backend.
        offline: Serve `keras.datasets.mnist.load_data()` from the local copy.
        out_dir: The folder for the results.
        check: How stored notebook outputs are compared.
        jobs: How many cells run side by side.
        junit_xml: Where to write a JUnit XML file (one test case per file and backend), if anywhere.
        progress: Called with a line of text as each cell ends.

    Returns:
        The payload: cells, warnings and `passed`.
    """
    if timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    files = collect_files(paths)
    for path in files:
        if path.suffix == ".ipynb":
            source_of(path)  # an unreadable notebook is bad input: one line, before anything runs
    chosen = list(backends or BACKENDS)
    warnings = [warning for path in files for warning in portability_warnings(path)]
    for warning in warnings:
        progress(f"warning: {warning}")
    available = set(installed_backends())
    if not available & set(chosen):
        raise UsageError(f"none of the backends {', '.join(chosen)} is installed here: nothing would be verified")
    cells = run_matrix(files, chosen, available, jobs=jobs, progress=progress,
                       run=lambda path, backend: run_cell(path, backend, timeout, offline, check, jobs))  # fmt: skip
    payload = {
        "backends": chosen,
        "files": [str(path) for path in files],
        "offline_datasets": offline,
        "timeout_seconds": timeout,
        "compare_outputs": check.mode,
        "rtol": check.rtol,
        "atol": check.atol,
        "jobs": jobs,
        "cells": [asdict(cell) for cell in cells],
        "warnings": warnings,
        "passed": all(cell.status in ("passed", "not installed") for cell in cells),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    out = Path(out_dir)
    try:
        write_json_atomic(out / "verify.json", payload)
        (out / "verify.md").write_text(markdown_matrix(payload) + "\n")
        (out / "verify.html").write_text(html_matrix(payload))
        if junit_xml:
            junit.write(payload, Path(junit_xml))
    except OSError as error:
        raise OutputError(f"cannot write the verify results: {error.strerror or error}") from None
    return payload


def run_matrix(files: list[Path], backends: list[str], available: set[str], *, jobs: int, progress, run) -> list[Cell]:
    """Runs `run(path, backend)` for every file and backend, `jobs` at a time; returns the cells in matrix order.

    An interruption (Ctrl-C, SIGTERM) ends every running child before it goes on up.
    """
    cells: dict[tuple[Path, str], Cell] = {}
    wanted = [(path, backend) for path in files for backend in backends]
    for path, backend in wanted:
        if backend not in available:  # not a failure of the script: it was not run
            cells[path, backend] = Cell(str(path), backend, "not installed", 0.0, INSTALL_HINTS[backend])
            _report(progress, cells[path, backend])
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool:
        futures = {pool.submit(run, path, backend): (path, backend) for path, backend in wanted
                   if (path, backend) not in cells}  # fmt: skip
        try:
            for future in as_completed(futures):
                cells[futures[future]] = future.result()
                _report(progress, cells[futures[future]])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            end_all_children()
            raise
    return [cells[key] for key in wanted]


def _report(progress, cell: Cell) -> None:
    progress(f"{cell.status:>14}  {cell.seconds:6.1f} s  {cell.backend:<10} {cell.file}"
             + (f"  {cell.error}" if cell.error else ""))  # fmt: skip


def _cell_text(cell: dict) -> str:
    if cell["status"] == "not installed":
        return f"not installed ({cell['error']})"
    if cell["status"] == "passed":
        return f"passed ({cell['seconds']:.1f} s)"
    if cell["status"] == "timed out":
        return f"TIMED OUT ({cell['seconds']:.0f} s)"
    if cell["status"] == "output differs":
        return f"OUTPUT DIFFERS ({cell['seconds']:.1f} s): {cell['error']}"
    return f"FAILED ({cell['seconds']:.1f} s): {cell['error']}"


def _context(payload: dict) -> dict:
    cells = {(cell["file"], cell["backend"]): cell for cell in payload["cells"]}
    numbers = {key: ", ".join(outputs.numbers_in(cell.get("last_line", ""))) for key, cell in cells.items()}
    return {**payload, "cells": cells, "numbers": numbers, "cell_text": _cell_text,
            "compare_outputs": payload.get("compare_outputs", "off")}  # fmt: skip


def markdown_matrix(payload: dict) -> str:
    """The file x backend matrix as a Markdown table, with the portability warnings under it."""
    return templating.render("multibackend.verify", "verify.md.j2", _context(payload)).rstrip("\n")


def html_matrix(payload: dict) -> str:
    """The matrix as a self-contained HTML page: status and seconds per cell, the last printed numbers, the differences."""
    return templating.render("multibackend.verify", "verify.html.j2", _context(payload))
