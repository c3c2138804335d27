"""The course's files: found in folders, read as Python reads a script or Jupyter a notebook, scanned for imports."""

from __future__ import annotations

import ast
import json
import tokenize
from pathlib import Path

from multibackend.backends import NAMES, backend
from multibackend.runtime.errors import UsageError
from multibackend.runtime.outputs import name_error
from multibackend.verify import cells as cell_plans
from multibackend.verify import outputs

SUFFIXES = (".py", ".ipynb")
# Folders of tools, environments and caches: never course code to verify.
SKIPPED_FOLDERS = {
    ".git",
    ".nox",
    ".venv",
    "venv",
    ".tox",
    "__pycache__",
    ".ipynb_checkpoints",
    "site-packages",
    "node_modules",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
}
# The modules of every backend's framework: importing one directly makes a file not backend-agnostic.
FRAMEWORKS = tuple(module for name in NAMES for module in backend(name).MODULES)


def collect_files(paths: list[str]) -> list[Path]:
    """Expands folders to the `.py` and `.ipynb` files in them; rejects anything else.

    Only regular files are course files (a FIFO or a device would block its reader); a file named twice, or found
    twice through folders, is verified once.
    """
    files: list[Path] = []
    for text in paths:
        path = Path(text)
        problem = name_error(path)
        if problem:
            raise UsageError(f"{text[:60]}...: {problem}")
        if not path.exists():
            raise UsageError(f"{path}: no such file or folder")
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix in SUFFIXES and p.is_file() and not SKIPPED_FOLDERS & set(p.relative_to(path).parts[:-1])
            )
            if not found:
                raise UsageError(f"{path}: no .py or .ipynb files in this folder")
            files.extend(found)
        elif path.suffix not in SUFFIXES:
            raise UsageError(f"{path}: not a Python script (.py) or notebook (.ipynb)")
        elif not path.is_file():
            raise UsageError(f"{path}: not a regular file (a FIFO or device would never end)")
        else:
            files.append(path)
    unique: dict[Path, Path] = {}
    for path in files:
        unique.setdefault(path.resolve(), path)
    return list(unique.values())


def read_notebook(path: Path) -> dict:
    """A notebook as a dict in nbformat 4 (older formats converted, as Jupyter does); one line naming the file when
    it cannot be read."""
    try:
        notebook = json.loads(path.read_bytes().decode("utf-8-sig"))
        if isinstance(notebook, dict) and isinstance(notebook.get("nbformat"), int) and notebook["nbformat"] < 4:
            import nbformat

            notebook = json.loads(nbformat.writes(nbformat.convert(nbformat.from_dict(notebook), 4)))
        code = [cell for cell in notebook["cells"] if cell.get("cell_type") == "code"]
        for cell in code:
            cell["source"]  # noqa: B018 - a code cell without source is not a notebook Jupyter runs
        _check_schema(notebook)
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise UsageError(f"{path}: unreadable ({error.strerror or error})") from None
    except RecursionError:
        raise UsageError(f"{path}: not a readable notebook (nested too deeply)") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise UsageError(f"{path}: not a readable notebook ({type(error).__name__}: {error})") from None
    return notebook


def _check_schema(notebook: dict) -> None:
    """Raises ValueError, with nbformat's first line, for a notebook its schema refuses (a cell's metadata that is
    not a mapping, a source list holding a number)."""
    import warnings

    import nbformat

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nbformat warns of missing cell ids, which Jupyter adds itself
        try:
            nbformat.validate(notebook)
        except nbformat.ValidationError as error:
            raise ValueError(f"nbformat's schema: {str(error.message).splitlines()[0][:200]}") from None


def source_of(path: Path) -> str:
    """The Python code of a script, or of a notebook's code cells that every backend runs (magics dropped).

    Cells gated to a backend (`cells.gate`) are left out: importing that backend's framework there is by design.
    """
    if path.suffix != ".ipynb":
        try:
            with tokenize.open(path) as stream:  # as Python reads a script: a PEP 263 coding line, a UTF-8 BOM
                return stream.read()
        except (SyntaxError, UnicodeDecodeError):
            raise UsageError(f"{path}: not UTF-8 text, and no coding line (PEP 263) says what it is") from None
        except OSError as error:
            raise UsageError(f"{path}: unreadable ({error.strerror or error})") from None
    code = [cell for cell in read_notebook(path)["cells"] if cell.get("cell_type") == "code"]
    lines = []
    for cell in code:
        if not cell_plans.gate(cell):
            text = outputs.cell_source(cell)
            lines += [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def framework_imports(path: Path) -> list[tuple[str, int]]:
    """The backend frameworks that a file imports directly, with the line (outside backend-gated cells)."""
    try:
        tree = ast.parse(source_of(path))
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [(name, node.lineno) for name in names if name.split(".")[0] in FRAMEWORKS]
    return found


def portability_warnings(path: Path) -> list[str]:
    """Lines that import a backend framework directly: the code is not backend-agnostic."""
    try:
        ast.parse(source_of(path))
    except SyntaxError as error:
        return [f"{path}: cannot parse ({error.msg}, line {error.lineno})"]
    return [
        f"{path}: imports {name} (line {line}): not portable across Keras backends"
        for name, line in framework_imports(path)
    ]


def stored_notebook(path: Path) -> dict | None:
    """The notebook at `path` when it carries outputs to compare with, else None."""
    if path.suffix != ".ipynb":
        return None
    notebook = read_notebook(path)
    return notebook if outputs.has_stored_outputs(notebook) else None
