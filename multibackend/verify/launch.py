"""Starting one (file, backend) run: a fresh working folder that is also its home, its environment, verify's job
(`child.verify_file`) in namespaces of its own (`containment`), and what it left behind (`ChildOutcome`)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from multibackend.runtime.children import ChildResult
from multibackend.runtime.jobs import from_fields, run_job
from multibackend.verify import cells as cell_plans
from multibackend.verify import containment, environment
from multibackend.verify.child import ChildRun, job_request
from multibackend.verify.model import ChildReport, VerifyOptions
from multibackend.verify.sandbox import SandboxSettings


@dataclass(frozen=True)
class ChildOutcome:
    """What a run's process left: how it ended, its report (None when it replied with none: killed, timed out, a
    crash of the process itself), why it replied with none, the cell it was in (`progress`) and the executed notebook
    (None for a script)."""

    finished: ChildResult
    report: ChildReport | None
    failure: str
    progress: str
    executed: dict | None


def child_run(path: Path, backend: str, reports: Path, options: VerifyOptions) -> ChildRun:
    """The job's arguments for `path` under `backend`: verify's options that reach the run, as one settings object."""
    settings = SandboxSettings(
        backend=backend,
        respect_pins=options.respect_pins,
        offline=options.offline,
        smoke=options.smoke,
        smoke_sample=options.smoke_sample,
        seed=options.seed,
        data_cache=options.data_cache,
        offline_downloads=options.offline_downloads,
    )
    executed = str(reports / "executed.ipynb") if path.suffix == ".ipynb" else ""
    return ChildRun(
        str(path.resolve()),
        str(reports),
        settings,
        shell=options.shell,
        executed=executed,
        keep_going=options.keep_going,
        device=options.device,
    )


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
        outcome = run_job(
            job_request(child_run(path, backend, reports, options)),
            timeout=options.timeout,
            env=env,
            cwd=folder,
            wrap=lambda command: containment.contained(command, read_only),
        )
        reply = outcome.reply
        report = from_fields(ChildReport, reply.value) if reply is not None and reply.value is not None else None
        if options.kept_dir and (options.keep_executed or outcome.process.timed_out):
            keep_what_ran(path, backend, Path(options.kept_dir), outcome.process, reports / "executed.ipynb")
        return ChildOutcome(
            outcome.process,
            report,
            reply.error if reply is not None else "",
            _read_text(reports / "progress"),
            _read_json(reports / "executed.ipynb") if path.suffix == ".ipynb" else None,
        )


def keep_what_ran(path: Path, backend: str, folder: Path, process: ChildResult, executed: Path) -> None:
    """Keeps a run's output tail (`NAME.log`) and its executed notebook (`NAME.ipynb`) in `folder`, NAME naming the
    file and the backend; a failure to keep them never fails the run."""
    name = f"{'_'.join(path.with_suffix('').parts[-3:])[-120:]}-{backend}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ended = "timed out" if process.timed_out else f"exit {process.returncode}"
        (folder / f"{name}.log").write_text(
            f"{path} under {backend}: {ended} after {process.seconds:.1f} s\n"
            f"--- stdout (its end) ---\n{process.stdout}\n--- stderr (its end) ---\n{process.stderr}\n"
        )
        if executed.is_file():
            shutil.copyfile(executed, folder / f"{name}.ipynb")
    except OSError:
        pass


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
    env.update(environment.download_caches(options.data_cache, options.offline_downloads, env))
    if options.offline:
        source = find_mnist()  # the caller's Keras cache is outside the run's home: name where the data is
        if source is not None:
            env[DATA_DIR_ENV] = str(source.path if source.path.is_dir() else source.path.parent)
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
