"""The package's architecture, checked from its source: no import cycle, the benchmark kept apart."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "multibackend"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, known: set[str]) -> set[str]:
    """The project's modules that `path` imports anywhere (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {name for name in names if name in known}
    return found


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    known = set(paths)
    return {name: imported_modules(path, known) - {name} for name, path in paths.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_imports_itself_back():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_nothing_outside_the_benchmark_imports_it():
    outside = {
        name: sorted(target for target in targets if target.startswith("multibackend.bench"))
        for name, targets in import_graph().items()
        if not name.startswith("multibackend.bench")
    }
    assert {name: targets for name, targets in outside.items() if targets} == {}


def test_the_model_module_uses_keras_and_the_course_specs_only():
    tree = ast.parse((PACKAGE / "models.py").read_text())
    roots = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    roots |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert roots <= {"__future__", "keras", "numpy", "multibackend.course.networks"}, roots


def test_every_folder_is_a_package_with_a_docstring():
    for folder in [
        PACKAGE,
        *(path for path in PACKAGE.rglob("*") if path.is_dir() and path.name not in ("__pycache__", "templates")),
    ]:
        init = folder / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), folder


def test_the_readme_is_short_and_its_links_lead_somewhere():
    readme = (PACKAGE.parent / "README.md").read_text()
    assert len(readme.splitlines()) <= 150, "the README is for a newcomer: details go to docs/"
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    assert targets and all((PACKAGE.parent / target).exists() for target in targets), targets


def test_child_processes_start_in_runtime_only():
    # One way to start a process (runtime/children.py: its own group, a time limit, pipes, every descendant ended).
    starters = {"subprocess", "multiprocessing", "os.fork", "os.spawnv", "os.spawnl", "os.system", "os.popen"}
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "runtime":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                names = [f"{node.value.id}.{node.attr}"]
            found += [f"{path.relative_to(PACKAGE)}:{node.lineno} {name}" for name in names if name in starters]
    assert found == []


def backend_name_switches(path: Path) -> list[str]:
    """Places in a module that compare with, or key on, a backend's name as a literal string."""
    from multibackend.backends import NAMES

    names = set(NAMES)
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        literals = []
        if isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                elements = side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                literals += [element for element in elements if isinstance(element, ast.Constant)]
        elif isinstance(node, ast.Dict):
            literals = [key for key in node.keys if isinstance(key, ast.Constant)]
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            literals = [node.slice]
        found += [
            f"{path.relative_to(PACKAGE)}:{node.lineno} {literal.value!r}"
            for literal in literals
            if literal.value in names
        ]
    return found


def test_only_a_backend_folder_chooses_behaviour_by_a_backend_name():
    # The benchmark's native baselines are one framework each by design (bench/native/).
    outside = [
        path
        for path in PACKAGE.rglob("*.py")
        if path.relative_to(PACKAGE).parts[0] != "backends"
        and path.relative_to(PACKAGE).parts[:2] != ("bench", "native")
    ]
    assert [switch for path in outside for switch in backend_name_switches(path)] == []


# A room a newcomer can read whole, and a function that fits on a screen; argparse tables are lists, not logic.
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def oversized(path: Path) -> list[str]:
    """The module itself when it is over `MAX_MODULE_LINES`, and its functions over `MAX_FUNCTION_LINES`."""
    source = path.read_text()
    where = path.relative_to(PACKAGE) if path.is_relative_to(PACKAGE) else path.name
    found = [f"{where}: {len(source.splitlines())} lines"] if len(source.splitlines()) > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "add_parser":
            length = node.end_lineno - node.lineno + 1
            found += [f"{where}:{node.lineno} {node.name}: {length} lines"] if length > MAX_FUNCTION_LINES else []
    return found


def test_no_module_is_over_400_lines_and_no_function_over_60():
    assert [entry for path in sorted(PACKAGE.rglob("*.py")) for entry in oversized(path)] == []


def test_the_size_check_finds_a_long_function(tmp_path):
    planted = tmp_path / "planted.py"
    body = "\n".join(f"    x{number} = {number}" for number in range(70))
    planted.write_text(f"def long_one():\n{body}\n")
    assert oversized(planted) == ["planted.py:1 long_one: 71 lines"]


# Options the docs name that belong to other tools: pytest, pip, ruff and mkdocs.
OTHER_TOOLS_OPTIONS = {"--lf", "--junitxml", "--no-deps", "--target", "--check", "--strict"}


def parser_options(parser) -> set[str]:
    """Every long option of an argparse parser and of its subcommands."""
    import argparse

    found = set()
    for action in parser._actions:
        found |= {option for option in action.option_strings if option.startswith("--")}
        if isinstance(action, argparse._SubParsersAction):
            for command in action.choices.values():
                found |= parser_options(command)
    return found


def test_every_option_the_docs_name_exists():
    from multibackend.bench.command import build_parser as bench_parser
    from multibackend.cli import build_parser
    from multibackend.verify.options import add_run_options

    plugin = {"--multibackend", "--multibackend-"}  # the prefix, as the docs name the family

    def declare(*names, **_):
        plugin.update(name for name in names if name.startswith("--"))

    add_run_options(declare, prefix="multibackend-")
    noxfile = set(re.findall(r'"(--[a-z][a-z0-9-]+)"', (PACKAGE.parent / "noxfile.py").read_text()))
    job = {"--reply"}  # `python -m multibackend.runtime.job REQUEST --reply PATH`
    # The standalone script `evolve` exports for each final network.
    exported = set(
        re.findall(r'add_argument\(\s*"(--[a-z-]+)"', (PACKAGE / "evolve" / "templates" / "winner.py.j2").read_text())
    )
    known = parser_options(build_parser()) | parser_options(bench_parser()) | plugin | noxfile | job | exported
    docs = [PACKAGE.parent / "README.md", *sorted((PACKAGE.parent / "docs").rglob("*.md"))]
    named = {
        (option, path.relative_to(PACKAGE.parent).as_posix())
        for path in docs
        for option in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", path.read_text())
    }
    assert sorted((option, where) for option, where in named if option not in known | OTHER_TOOLS_OPTIONS) == []
