"""The course's files: found in folders, read as Python reads a script or Jupyter a notebook, scanned for imports."""

from __future__ import annotations

import ast
import json
import tokenize
from dataclasses import dataclass
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
# The modules of every backend's framework: importing one directly makes a file not backend-agnostic, unless it is
# used only as a data pipeline (`DATA_PIPELINES`, which Keras 3 accepts on every backend).
FRAMEWORKS = tuple(module for name in NAMES for module in backend(name).MODULES)
DATA_PIPELINES = tuple(module for name in NAMES for module in getattr(backend(name), "DATA_PIPELINES", ()))


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
    return "\n".join(text for _, text in source_lines(path))


def source_lines(path: Path) -> list[tuple[str, str]]:
    """The lines of `source_of`, each with where it is in the file: "line M", or "cell N, line M" in a notebook."""
    if path.suffix != ".ipynb":
        try:
            with tokenize.open(path) as stream:  # as Python reads a script: a PEP 263 coding line, a UTF-8 BOM
                text = stream.read()
        except (SyntaxError, UnicodeDecodeError):
            raise UsageError(f"{path}: not UTF-8 text, and no coding line (PEP 263) says what it is") from None
        except OSError as error:
            raise UsageError(f"{path}: unreadable ({error.strerror or error})") from None
        return [(f"line {number}", line) for number, line in enumerate(text.splitlines(), 1)]
    lines = []
    for number, cell in enumerate(read_notebook(path)["cells"], 1):
        if cell.get("cell_type") != "code" or cell_plans.gate(cell):
            continue
        for line_number, line in enumerate(outputs.cell_source(cell).splitlines(), 1):
            if not line.lstrip().startswith(("%", "!")):
                lines.append((f"cell {number}, line {line_number}", line))
    return lines


@dataclass(frozen=True)
class FrameworkImport:
    """A backend framework that a file imports directly.

    Attributes:
        module: The module as imported ("tensorflow", "jax.numpy").
        place: Where: "line M", or "cell N, line M" in a notebook.
        data_pipeline: Whether the file uses it only as a data pipeline (`tf.data`, torch's `DataLoader`), which
            Keras 3 accepts on every backend: that is not pinning a backend.
    """

    module: str
    place: str
    data_pipeline: bool


def framework_imports(path: Path) -> list[FrameworkImport]:
    """The backend frameworks that a file imports directly (outside backend-gated cells)."""
    lines = source_lines(path)
    try:
        tree = ast.parse("\n".join(text for _, text in lines))
    except SyntaxError:
        return []
    uses = _attribute_uses(tree)
    return [
        FrameworkImport(name, lines[node.lineno - 1][0], pipeline)
        for node in ast.walk(tree)
        for name, pipeline in _imported(node, uses)
        if name.split(".")[0] in FRAMEWORKS
    ]


def _imported(node: ast.AST, uses: dict[str, list[str | None]]) -> list[tuple[str, bool]]:
    """The modules an import statement imports, each with whether the code uses it only as a data pipeline."""
    if isinstance(node, ast.Import):
        return [
            (alias.name, _only_pipelines(uses.get(alias.asname or alias.name.split(".")[0], [None]), alias))
            for alias in node.names
        ]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [(node.module, all(_is_pipeline(f"{node.module}.{alias.name}") for alias in node.names))]
    return []


def _attribute_uses(tree: ast.AST) -> dict[str, list[str | None]]:
    """For each name the code uses, the dotted paths it is used through (`tf.data.Dataset`); None for a bare use."""
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    uses: dict[str, list[str | None]] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)):
            continue
        parts, current = [node.id], node
        while isinstance(parents.get(current), ast.Attribute) and parents[current].value is current:
            current = parents[current]
            parts.append(current.attr)
        uses.setdefault(node.id, []).append(".".join(parts) if len(parts) > 1 else None)
    return uses


def _only_pipelines(paths: list[str | None], alias: ast.alias) -> bool:
    """Whether every use of the name an `import` binds goes through a data pipeline (`import torch.utils.data` binds
    `torch`; `import tensorflow as tf` binds `tf` to `tensorflow`)."""
    bound = alias.asname or alias.name.split(".")[0]
    module = alias.name if alias.asname else bound
    return bool(paths) and all(path is not None and _is_pipeline(module + path[len(bound) :]) for path in paths)


def _is_pipeline(dotted: str) -> bool:
    return any(dotted == prefix or dotted.startswith(prefix + ".") for prefix in DATA_PIPELINES)


def framework_backend(path: Path) -> str:
    """The backend whose framework the file imports directly (not only as a data pipeline), or ""."""
    for found in framework_imports(path):
        if not found.data_pipeline:
            top = found.module.split(".")[0]
            return next(name for name in NAMES if top in backend(name).MODULES)
    return ""


def portability_warnings(path: Path) -> list[str]:
    """Lines that import a backend framework directly (other than as a data pipeline): not backend-agnostic."""
    try:
        ast.parse(source_of(path))
    except SyntaxError as error:
        return [f"{path}: cannot parse ({error.msg}, line {error.lineno})"]
    return [
        f"{path}: imports {found.module} ({found.place}): not portable across Keras backends"
        for found in framework_imports(path)
        if not found.data_pipeline
    ]


@dataclass(frozen=True)
class MissingPackage:
    """A module a file imports that this environment cannot import: `module` and where ("cell N, line M")."""

    module: str
    place: str


def missing_packages(path: Path) -> list[MissingPackage]:
    """The modules a file imports (outside backend-gated cells, and outside `try` blocks that catch the import's
    failure) that are neither installed here nor beside the file; each once, at its first import."""
    lines = source_lines(path)
    try:
        tree = ast.parse("\n".join(text for _, text in lines))
    except SyntaxError:
        return []
    guarded = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.Try) and _catches_import_errors(node)
        for statement in node.body
        for inner in ast.walk(statement)
    }
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules = [node.module]
        else:
            continue
        for module in modules:
            if module not in found and not importable(module, path.parent):
                found[module] = lines[node.lineno - 1][0]
    return [MissingPackage(module, place) for module, place in found.items()]


def missing_package_warning(path: Path) -> list[str]:
    """One line naming what a file imports that is not installed here, before anything runs ([] when nothing is)."""
    missing = missing_packages(path)
    if not missing:
        return []
    named = ", ".join(f"{found.module} ({found.place})" for found in missing)
    return [f"{path}: imports what is not installed here: {named}"]


def _catches_import_errors(node: ast.Try) -> bool:
    caught = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
    for handler in node.handlers:
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if handler.type is None or any(isinstance(kind, ast.Name) and kind.id in caught for kind in types):
            return True
    return False


def importable(module: str, folder: Path) -> bool:
    """Whether `module` can be imported here or from the file's folder, found without importing anything: a
    namespace package's parts (`google.colab`, beside protobuf's `google`) are looked for in its folders."""
    import importlib.util

    parts = module.split(".")
    if (folder / f"{parts[0]}.py").is_file() or (folder / parts[0]).is_dir():
        return True
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if spec.origin in (None, "namespace") and len(parts) > 1 and spec.submodule_search_locations:
        return any(
            (Path(location) / parts[1]).is_dir() or any(Path(location).glob(f"{parts[1]}.*"))
            for location in spec.submodule_search_locations
        )
    return True


def stored_notebook(path: Path) -> dict | None:
    """The notebook at `path` when it carries outputs to compare with, else None."""
    if path.suffix != ".ipynb":
        return None
    notebook = read_notebook(path)
    return notebook if outputs.has_stored_outputs(notebook) else None
