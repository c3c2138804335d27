"""What `verify` does with each code cell of a notebook under one backend: run it, leave it to another backend, skip it.

Read from the notebook itself, before anything runs:

- **Backend-gated cells.** The `%%backend NAME` cell magic (the convention of
  Keras 3 course notebooks such as *Deep Learning with Python*, 3rd edition:
  the cell runs only when `KERAS_BACKEND` is NAME), or the cell tag
  `backend-only:NAME` (nbval's style; several tags allow several backends).
  Under another backend the cell is not run and is counted as gated.
- **Shell escapes that install.** `!pip install`, `%pip install`, `!conda`,
  `%conda`, `!apt-get`, `!uv pip`, ... (also inside `%%bash`/`%%sh` cells) change
  the machine outside the run: by default they are not run; each one is
  reported with its cell and line. Other shell escapes run.
- **nbval's `NBVAL_SKIP`**: not run.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass, field

from multibackend.verify.outputs import cell_source, cell_tags, directives

BACKEND_TAG = "backend-only:"
SHELL_MODES = ("skip-installs", "run")  # the default first
# Cell magics whose body is shell code.
SHELL_CELL_MAGICS = ("bash", "sh", "script")
# Line magics that run a package manager (IPython's own) or a shell command.
INSTALLER_MAGICS = ("pip", "conda", "mamba", "micromamba", "uv")
SHELL_LINE_MAGICS = ("system", "sx")
SKIPPED_LINE = "pass  # multibackend verify: a shell install was here, not run"
SKIPPED_SHELL_LINE = ": # multibackend verify: a shell install was here, not run"

# Package managers, and their subcommands that change what is installed.
_INSTALLING = {
    "pip": {"install", "uninstall"},
    "conda": {"install", "remove", "uninstall", "update", "upgrade", "create", "env"},
    "mamba": {"install", "remove", "uninstall", "update", "upgrade", "create", "env"},
    "micromamba": {"install", "remove", "uninstall", "update", "create", "env"},
    "apt": {"install", "remove", "purge", "update", "upgrade", "full-upgrade", "autoremove"},
    "apt-get": {"install", "remove", "purge", "update", "upgrade", "dist-upgrade", "autoremove"},
    "aptitude": {"install", "remove", "purge", "update", "upgrade"},
    "yum": {"install", "remove", "update", "upgrade"},
    "dnf": {"install", "remove", "update", "upgrade"},
    "apk": {"add", "del", "update", "upgrade"},
    "brew": {"install", "uninstall", "upgrade", "update"},
    "uv": {"add", "remove", "sync"},
}
_SEPARATORS = re.compile(r"&&|\|\||[;|\n]")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^(python[0-9.]*|\{.*\})$")  # python, python3.11, {sys.executable}


def installs(command: str) -> bool:
    """Whether a shell command line runs a package manager that changes what is installed.

    Args:
        command: The command as the shell sees it (`pip install x && python y.py`).

    Returns:
        True when any of its commands installs, removes or upgrades packages.
    """
    return any(_piece_installs(piece) for piece in _SEPARATORS.split(command))


def _piece_installs(piece: str) -> bool:
    try:
        words = shlex.split(piece, comments=True)
    except ValueError:
        words = piece.split()
    while words and (_ASSIGNMENT.match(words[0]) or words[0] in ("sudo", "env", "command", "time", "exec")):
        words.pop(0)
    if not words:
        return False
    name = words[0].rsplit("/", 1)[-1]
    rest = words[1:]
    if _PYTHON.match(name) and rest[:1] == ["-m"] and len(rest) > 1:
        name, rest = rest[1], rest[2:]
    if re.fullmatch(r"pip[0-9.]*", name):
        name = "pip"
    if name == "uv" and rest[:1] in (["pip"], ["tool"]):
        name, rest = "pip", rest[1:]
    subcommands = _INSTALLING.get(name)
    if subcommands is None:
        return False
    subcommand = next((word for word in rest if not word.startswith("-")), "")
    return subcommand in subcommands


def shell_command(line: str) -> str | None:
    """The shell command that a notebook line runs (`!cmd`, `%pip ...`, `%system cmd`), else None."""
    stripped = line.strip()
    if stripped.startswith("!"):
        return stripped.lstrip("!")
    match = re.match(r"%([A-Za-z_]\w*)\s*(.*)$", stripped)
    if match is None or stripped.startswith("%%"):
        return None
    magic, rest = match.groups()
    if magic in INSTALLER_MAGICS:
        return f"{magic} {rest}"
    if magic in SHELL_LINE_MAGICS:
        return rest
    return None


def _cell_magic(source: str) -> tuple[str, str]:
    """The cell magic on a cell's first line and its arguments (("", "") when there is none)."""
    first = source.lstrip("\n").split("\n", 1)[0].strip()
    match = re.match(r"%%([A-Za-z_]\w*)\s*(.*)$", first)
    return (match.group(1), match.group(2).strip()) if match else ("", "")


def gate(cell: dict) -> tuple[str, ...]:
    """The backends a cell is limited to (empty: every backend).

    `%%backend NAME` takes the last word of its line, as the course notebooks' own magic does.
    """
    magic, arguments = _cell_magic(cell_source(cell))
    backends = [arguments.split()[-1]] if magic == "backend" and arguments else []
    backends += [tag[len(BACKEND_TAG) :].strip() for tag in cell_tags(cell) if tag.startswith(BACKEND_TAG)]
    return tuple(dict.fromkeys(name for name in backends if name))


@dataclass(frozen=True)
class Skipped:
    """Code that was not run: a whole cell, or one line of it (`line` from 1)."""

    cell: int
    reason: str
    line: int | None = None

    def to_json(self) -> dict:
        return {"cell": self.cell, "reason": self.reason, **({"line": self.line} if self.line else {})}


@dataclass(frozen=True)
class Gated:
    """A cell limited to other backends than the one running."""

    cell: int
    backends: tuple[str, ...]

    def to_json(self) -> dict:
        return {"cell": self.cell, "backend": ",".join(self.backends)}


@dataclass
class CellPlan:
    """What happens to a notebook's code cells under one backend.

    Attributes:
        run: The code cells to run (numbers as Jupyter counts all cells, from 1).
        sources: New sources of cells whose install lines are taken out (cell -> source).
        gated: Cells limited to other backends.
        skipped: Cells and lines not run, with the reason.
        raises: Cells that must raise (nbval's `NBVAL_RAISES_EXCEPTION`).
        not_compared: Cells whose stored outputs are not compared (gated, skipped, with an install taken out).
    """

    run: list[int] = field(default_factory=list)
    sources: dict[int, str] = field(default_factory=dict)
    gated: list[Gated] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    raises: set[int] = field(default_factory=set)
    not_compared: set[int] = field(default_factory=set)


def plan(notebook: dict, backend: str, shell: str = "skip-installs") -> CellPlan:
    """Decides, cell by cell, what a run of `notebook` under `backend` does.

    Args:
        notebook: The notebook (nbformat 4, as a dict or NotebookNode).
        backend: The backend of this run.
        shell: "skip-installs" takes out shell escapes that install packages; "run" runs everything as written.

    Returns:
        The `CellPlan`.
    """
    result = CellPlan()
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        source = cell_source(cell)
        if cell.get("cell_type") != "code" or not source.strip():
            continue
        marks = directives(source, cell_tags(cell))
        backends = gate(cell)
        if marks.skip:
            result.skipped.append(Skipped(number, "NBVAL_SKIP"))
            result.not_compared.add(number)
            continue
        if backends:  # backend-specific by design: its stored outputs are one backend's
            result.not_compared.add(number)
            if backend not in backends:
                result.gated.append(Gated(number, backends))
                continue
        kept, taken = _without_installs(source) if shell == "skip-installs" else (source, [])
        if taken:
            result.skipped += [Skipped(number, f"shell install: {command}", line) for line, command in taken]
            result.not_compared.add(number)
            if not _has_code(kept):
                continue  # nothing but installs: the cell is not run
            result.sources[number] = kept
        result.run.append(number)
        if marks.raises_exception:
            result.raises.add(number)
    return result


def _without_installs(source: str) -> tuple[str, list[tuple[int, str]]]:
    """The source with every installing shell escape replaced by a no-op line; and the (line, command) taken out."""
    lines = source.split("\n")
    magic, arguments = _cell_magic(source)
    is_shell = magic in SHELL_CELL_MAGICS and (magic != "script" or arguments.split()[:1] in (["bash"], ["sh"]))
    taken = []
    for index, line in enumerate(lines):
        if is_shell:
            if line.strip().startswith("%%") or not installs(line):
                continue
            command, replacement = line.strip(), SKIPPED_SHELL_LINE
        else:
            command = shell_command(line)
            if command is None or not installs(command):
                continue
            command, replacement = line.strip(), SKIPPED_LINE
        indent = line[: len(line) - len(line.lstrip())]
        lines[index] = indent + replacement
        taken.append((index + 1, command))
    return "\n".join(lines), taken


def _has_code(source: str) -> bool:
    """Whether anything is left but no-op lines, comments and a cell magic's line."""
    for line in source.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "%%")) and stripped not in (SKIPPED_LINE, SKIPPED_SHELL_LINE):
            return True
    return False


def bound_names(source: str) -> set[str]:
    """The names a cell's code binds at its top level (assignments, definitions, imports, loop targets)."""
    try:
        tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names
