"""Starting one (file, backend) run: a fresh working folder that is also its home, its environment, verify's child
process in namespaces of its own (`containment`), and what the child left behind (`ChildOutcome`)."""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from multibackend.runtime.children import ChildResult, run_child
from multibackend.verify import cells as cell_plans
from multibackend.verify import containment, environment
from multibackend.verify.model import SMOKE_MAX_STEPS, VerifyOptions


@dataclass(frozen=True)
class ChildOutcome:
    """What a run's process left: how it ended, its child's report (`child.json`), the cell it was in (`progress`)
    and the executed notebook (None for a script)."""

    finished: ChildResult
    report: dict
    progress: str
    executed: dict | None


def child_command(path: Path, reports: Path, options: VerifyOptions) -> list[str]:
    """verify's child process for `path`, writing its report into `reports`."""
    command = [sys.executable, "-m", "multibackend.verify.child", "--report-dir", str(reports)]
    command += ["--shell", options.shell, "--executed", str(reports / "executed.ipynb")]
    if options.offline:
        command.append("--offline-datasets")
    if options.smoke:
        command.append("--smoke")
    if options.smoke_sample:
        command += ["--smoke-sample", ",".join(map(str, options.smoke_sample))]
    if options.respect_pins:
        command.append("--respect-backend-pins")
    if options.seed is not None:
        command += ["--seed", str(options.seed)]
    return [*command, str(path.resolve())]


def launch(path: Path, backend: str, options: VerifyOptions) -> ChildOutcome:
    """Runs `path` under `backend` in a fresh working folder (also its home), in its own session and namespaces: a
    timeout, or its end, also ends a notebook's kernel and anything the script started, and nothing else.

    Returns:
        What the run's process left (`ChildOutcome`); the working folder is gone.
    """
    with tempfile.TemporaryDirectory(prefix="multibackend-verify-") as folder:
        workdir = Path(folder)
        reports = workdir / ".multibackend-verify"
        env = child_environment(backend, workdir, options)
        read_only = None if options.shell == cell_plans.SHELL_MODES[0] else []  # --shell run: installs allowed
        command = containment.contained(child_command(path, reports, options), read_only)
        finished = run_child(command, timeout=options.timeout, env=env, cwd=folder)
        return ChildOutcome(
            finished,
            _read_json(reports / "child.json"),
            _read_text(reports / "progress"),
            _read_json(reports / "executed.ipynb") if path.suffix == ".ipynb" else None,
        )


def child_environment(backend: str, workdir: Path, options: VerifyOptions) -> dict[str, str]:
    """The environment of one run (`environment.run_environment`) with verify's own settings on top.

    Every `MULTIBACKEND_*` variable of the run is verify's: the caller's never reach it.
    """
    from multibackend.course.data import DATA_DIR_ENV, find_mnist

    env = environment.run_environment(
        backend,
        workdir,
        jobs=options.jobs,
        pass_env=options.pass_env,
        refuse_installs=options.shell == cell_plans.SHELL_MODES[0],
    )
    if options.offline:
        source = find_mnist()  # the caller's Keras cache is outside the run's home: name where the data is
        if source is not None:
            env[DATA_DIR_ENV] = str(source.path if source.path.is_dir() else source.path.parent)
    if options.smoke:
        env.update(KERAS_MAX_STEPS_PER_EPOCH=str(SMOKE_MAX_STEPS), MULTIBACKEND_SMOKE="1")
    return env


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
