"""The pytest plugin: `pytest --multibackend[=BACKENDS] PATHS` tests course scripts and notebooks under each backend.

Each `.py` script and `.ipynb` notebook under PATHS becomes one test item per backend
(`course/mnist.ipynb::torch`), run by `multibackend verify`'s engine (`judge.run_file`): a fresh
process with KERAS_BACKEND set, the backend that ran checked, installs not run, gated cells counted,
stored outputs compared. pytest brings the rest: `-k`, `-x`, `--lf`, `--junitxml`, `-n` (pytest-xdist).
Inert unless `--multibackend` is given: the plugin is registered for every pytest run of the environment.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from multibackend.backends import NAMES
from multibackend.runtime.errors import UsageError
from multibackend.verify.options import add_run_options, build_options

ALL_BACKENDS = ",".join(NAMES)
KEPT_FOLDER = "multibackend-executed"  # --multibackend-keep-executed: executed notebooks, output tails
COURSE_SUFFIXES = (".py", ".ipynb")
NOT_COURSE_FILES = ("__init__.py", "conftest.py", "setup.py", "noxfile.py")


@dataclass(frozen=True)
class Settings:
    """What `--multibackend*` asked for: the backends, how each file runs, and the shard."""

    backends: tuple[str, ...]
    options: object  # run.VerifyOptions, built when the first item runs (auto offline datasets probe the network)
    shard: object | None  # shards.Shard
    durations_from: str | None


SETTINGS = pytest.StashKey[Settings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("multibackend", "Keras course files under each backend (multibackend verify)")
    group.addoption(
        "--multibackend",
        nargs="?",
        const=ALL_BACKENDS,
        default=None,
        metavar="BACKENDS",
        help=f"collect each .py script and .ipynb notebook under the paths as one test per backend "
        f"(comma-separated; default: {ALL_BACKENDS})",
    )
    # verify's own options, types and checks (`options.RUN_OPTIONS`), each as --multibackend-NAME.
    add_run_options(group.addoption, prefix="multibackend-")


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    """`pytest --multibackend course/` means every backend: the path after the flag is a path, not its value."""
    for index, arg in enumerate(args):
        if arg == "--":
            return
        if arg == "--multibackend" and (index + 1 == len(args) or not _is_backend_list(args[index + 1])):
            args[index] = f"--multibackend={ALL_BACKENDS}"


def _is_backend_list(text: str) -> bool:
    return all(part in NAMES for part in text.split(","))


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("multibackend")
    if chosen is None:
        return
    backends = tuple(part.strip() for part in chosen.split(","))
    unknown = [name for name in backends if name not in NAMES]
    if unknown or not backends:
        raise pytest.UsageError(
            f"--multibackend={chosen}: unknown backend {unknown[0]!r} (choose from {', '.join(NAMES)})"
        )
    shard = config.getoption("multibackend_shard")
    durations_from = config.getoption("multibackend_durations_from")
    if durations_from and not shard:
        raise pytest.UsageError("--multibackend-durations-from needs --multibackend-shard (it balances the shares)")
    config.stash[SETTINGS] = Settings(tuple(dict.fromkeys(backends)), None, shard, durations_from)


def is_course_file(path: Path, config: pytest.Config) -> bool:
    """A script or notebook to run under each backend: not a test module, a conftest or a package's `__init__`."""
    from multibackend.verify.files import SKIPPED_FOLDERS

    if path.suffix not in COURSE_SUFFIXES or path.name in NOT_COURSE_FILES:
        return False
    if any(part in SKIPPED_FOLDERS for part in path.parts):
        return False
    if path.suffix == ".py":
        return not any(fnmatch.fnmatch(path.name, pattern) for pattern in config.getini("python_files"))
    return True


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if SETTINGS not in parent.config.stash or not is_course_file(file_path, parent.config):
        return None
    if file_path.suffix == ".py" and parent.session.isinitpath(file_path):
        return None  # pytest's Python plugin asks `pytest_pycollect_makemodule` for a script named on the command line
    return CourseFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makemodule(module_path: Path, parent: pytest.Collector):
    """A course script named on the command line: collected as course runs, never imported into pytest."""
    if SETTINGS in parent.config.stash and is_course_file(module_path, parent.config):
        return CourseFile.from_parent(parent, path=module_path)
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    settings = config.stash.get(SETTINGS, None)
    if settings is None or settings.shard is None:
        return
    from multibackend.verify.shards import earlier_durations, runs_of

    try:
        durations = earlier_durations(settings.durations_from) if settings.durations_from else None
    except UsageError as error:  # it names the file and what is wrong with it
        raise pytest.UsageError(str(error)) from None
    runs = {item: (_shown_path(item.path, config), item.backend) for item in items if isinstance(item, CourseRun)}
    kept = set(runs_of(settings.shard, list(runs.values()), durations))
    deselected = [item for item, run in runs.items() if run not in kept]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


def _shown_path(path: Path, config: pytest.Config) -> str:
    """The file as `multibackend verify` names it when run from the same folder: relative, if it can be."""
    try:
        return os.path.relpath(path, config.invocation_params.dir)
    except ValueError:  # another drive
        return str(path)


class CourseFile(pytest.File):
    """A course script or notebook: one item per backend."""

    def collect(self):
        for backend in self.config.stash[SETTINGS].backends:
            yield CourseRun.from_parent(self, name=backend, backend=backend)


class CourseRunFailed(Exception):
    """A run that did not pass: carries verify's cell (what ran, where it failed, what differed)."""

    def __init__(self, cell):
        super().__init__(cell.error)
        self.cell = cell


class CourseRun(pytest.Item):
    """One course file under one backend, in a fresh process."""

    def __init__(self, *, backend: str, **kwargs):
        super().__init__(**kwargs)
        self.backend = backend

    def runtest(self) -> None:
        from multibackend.runtime.backend import INSTALL_HINTS, installed_backends
        from multibackend.verify.judge import run_file
        from multibackend.verify.junit import measured_properties

        if self.backend not in installed_backends():
            pytest.skip(f"{self.backend} is not installed ({INSTALL_HINTS[self.backend]})")
        cell = run_file(Path(_shown_path(self.path, self.config)), self.backend, _options(self.config))
        self.user_properties += [
            ("status", cell.status),
            ("backend_used", cell.backend_used or "keras not imported"),
            ("code_cells_ran", cell.code_cells_ran),
            ("code_cells_gated", len(cell.code_cells_gated)),
            ("code_cells_skipped", len(cell.code_cells_skipped)),
            ("result", cell.last_line),
            *measured_properties(dataclasses.asdict(cell), []),
        ]
        if cell.status == "pinned":
            pytest.skip(cell.error)
        if cell.status != "passed":
            raise CourseRunFailed(cell)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CourseRunFailed):
            return describe_failure(excinfo.value.cell)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"{self.path.name} under {self.backend}"


def _options(config: pytest.Config):
    """verify's options from the command line, made once per process."""
    settings = config.stash[SETTINGS]
    if settings.options is None:
        # With pytest-xdist, the cores' threads are shared among its workers' runs.
        jobs = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        try:
            options, _, _ = build_options(lambda dest: config.getoption(f"multibackend_{dest}"), jobs=jobs)
        except UsageError as error:
            raise pytest.UsageError(str(error)) from None
        if options.keep_executed:  # beside the tests: pytest has no results folder of its own
            options = dataclasses.replace(options, kept_dir=str(config.rootpath / KEPT_FOLDER))
        settings = config.stash[SETTINGS] = Settings(
            settings.backends, options, settings.shard, settings.durations_from
        )
    return settings.options


def describe_failure(cell) -> str:
    """What a failed course run shows: the file, the backend asked for and the one that ran, where and why."""
    if cell.backend_used:
        ran = cell.backend_used
    elif "DeadKernelError" in cell.error:
        ran = "not known: the kernel died before it could say"
    else:
        ran = "keras not imported"
    lines = [f"{cell.file} under {cell.backend}: {cell.status.upper()} after {cell.seconds:.1f} s (ran: {ran})"]
    lines.append(cell.error)  # a notebook's names its cell
    for failed in cell.failed_cells[1:]:  # --multibackend-keep-going: every failing cell
        after = " (only after an earlier error)" if failed.get("after_earlier_error") else ""
        lines.append(f"  cell {failed['cell']}: {failed['error']}{after}")
    lines += [f"  differs: {line}" for line in cell.differences[1:]]
    counts = [f"{cell.code_cells_ran} code cell{'' if cell.code_cells_ran == 1 else 's'} ran"]
    if cell.code_cells_gated:
        counts.append(f"{len(cell.code_cells_gated)} gated to another backend")
    if cell.code_cells_skipped:
        counts.append(f"{len(cell.code_cells_skipped)} skipped")
    lines.append(", ".join(counts))
    return "\n".join(lines)
