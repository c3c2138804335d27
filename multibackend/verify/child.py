"""Runs one script or notebook in this process: the job that `multibackend verify` starts per (file, backend).

verify starts it through the one job protocol (`runtime.jobs`): a `JobRequest` for `verify_file` whose
arguments are a `ChildRun` (the file, the folder for what the run leaves, and the `SandboxSettings` whole);
the reply's value is a `ChildReport`. The job fixes the backend and the device before anything imports Keras;
the file runs with verify's sandbox installed (`sandbox.py`): in this process for a script, through an IPython
start-up file in the notebook's kernel. A notebook runs as nbval runs it (`NBVAL_SKIP` cells are not run,
`NBVAL_RAISES_EXCEPTION` cells must raise), and as `cells.plan` says: cells gated to another backend and shell
escapes that install are not run. A cell that shows an error fails the run even when the kernel reports success
(a cell magic that runs its body with `run_cell` does).

A file that failed ends the job with exit status 1 and its report in the reply all the same (`JobFailed`): the
cells that ran, the one that failed, what the sandbox saw. The cell running now is in the folder's `progress`,
for a caller that has to stop the run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import runpy
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from multibackend.runtime.jobs import DEVICE_ENV, JobFailed, JobRequest
from multibackend.verify import cells, sandbox
from multibackend.verify.model import ChildReport
from multibackend.verify.sandbox import SandboxSettings

KERNEL_NAME = "multibackend-verify"
STARTUP_FILE = "00-multibackend-verify.py"
STARTUP_CODE = "import multibackend.verify.sandbox as _mb_sandbox\n_mb_sandbox.install()\ndel _mb_sandbox\n"
PROBE_CODE = "import multibackend.verify.sandbox as _mb_sandbox\n_mb_sandbox.write_report()\ndel _mb_sandbox\n"
# Printed text kept per cell: a cell that prints without end must cost neither memory here nor disk.
CELL_OUTPUT_LIMIT = 1 << 20


@dataclass(frozen=True)
class ChildRun:
    """One verify run, as its job's arguments.

    Attributes:
        path: The script or notebook (absolute).
        folder: Where the run leaves what it is asked for: `progress`, the kernel's settings and start-up file.
        sandbox: What the verified process is told (the options of verify that reach it, whole).
        shell: How shell escapes that install are treated (`cells.SHELL_MODES`).
        executed: Where to write the run notebook ("" for none; notebooks only).
        keep_going: Run a notebook's cells after a failing one (the run still fails; every failing cell is reported).
        device: auto, cpu or gpu (see `runtime.jobs.JobRequest`).
    """

    path: str
    folder: str
    sandbox: SandboxSettings
    shell: str = cells.SHELL_MODES[0]
    executed: str = ""
    keep_going: bool = False
    device: str = "cpu"


@dataclass
class _Progress:
    """What a run has done so far: filled as it goes, so that a failure still reports it."""

    ran: list[int] = field(default_factory=list)
    gated: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # with keep_going: every failing cell
    execution_cells: dict[int, int] = field(default_factory=dict)  # the kernel's execution count -> cell


def job_request(run: ChildRun) -> JobRequest:
    """The job that runs `run` under its sandbox's backend (the course file imports Keras when it does)."""
    return JobRequest(
        backend=run.sandbox.backend,
        function=f"{__name__}:verify_file",
        arguments=run,
        device=run.device,
        import_keras=False,
        hide_other_frameworks=False,  # a course file may use any framework it finds (a notebook's tf.data)
    )


class CellFailed(Exception):
    """A notebook cell failed: its number and the one-line error."""

    def __init__(self, cell: int | None, error: str, dead_kernel: bool = False):
        super().__init__(error)
        self.cell = cell
        self.dead_kernel = dead_kernel


def capped_client(notebook, **options):
    """An nbclient `NotebookClient` that keeps at most `CELL_OUTPUT_LIMIT` characters of printed text per cell."""
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):
            if msg["msg_type"] == "stream":
                printed = self._printed.get(cell_index, 0)
                text = msg["content"].get("text", "")
                self._printed[cell_index] = printed + len(text)
                if printed >= CELL_OUTPUT_LIMIT:
                    return None
                if printed + len(text) > CELL_OUTPUT_LIMIT:
                    msg["content"]["text"] = text[: CELL_OUTPUT_LIMIT - printed] + "\n[further output not kept]\n"
            return super().output(outs, msg, display_id, cell_index)

    client = CappedClient(notebook, **options)
    client._printed = {}
    return client


def run_script(path: Path, settings: SandboxSettings, progress: _Progress) -> None:
    """Runs a script as `__main__` in this process, with the sandbox installed; its failure is `CellFailed` (cell 1)."""
    sandbox.install(settings)
    sys.argv = [str(path)]
    sys.path.insert(0, str(path.parent))
    progress.ran.append(1)
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            raise CellFailed(1, f"SystemExit: {exit_.code}") from None
    except Exception as error:  # noqa: BLE001 - the script's own error: its traceback for the reader, one line back
        traceback.print_exc()
        raise CellFailed(1, _one_line(error)) from None
    finally:
        sandbox.write_report()


def prepare_kernel(folder: Path) -> None:
    """A kernel of this very Python, with the sandbox's start-up file, for the notebook about to run.

    The kernel spec lives in `folder` (first on JUPYTER_PATH): a `python3` spec found elsewhere
    could start another interpreter.
    """
    spec = folder / "jupyter" / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "verify", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        filter(None, [str(folder / "jupyter"), os.environ.get("JUPYTER_PATH")])
    )
    ipython_dir = Path(os.environ.setdefault("IPYTHONDIR", str(folder / "ipython")))
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / STARTUP_FILE).write_text(STARTUP_CODE)


def run_notebook(run: ChildRun, folder: Path, progress: _Progress) -> None:
    """Runs a notebook's cells as `cells.plan` says, then asks its kernel what ran; fills `progress`."""
    import nbformat

    notebook = nbformat.reads(Path(run.path).read_bytes().decode("utf-8-sig"), as_version=4)  # older formats too
    plan = cells.plan(notebook, run.sandbox.backend, run.shell)
    progress.gated = [gated.to_json() for gated in plan.gated]
    progress.skipped = [skipped.to_json() for skipped in plan.skipped]
    originals = {number: notebook.cells[number - 1].source for number in plan.sources}
    for number, source in plan.sources.items():
        notebook.cells[number - 1].source = source
    for number in plan.raises:  # nbclient's own way to let a cell raise
        tags = notebook.cells[number - 1].metadata.setdefault("tags", [])
        if "raises-exception" not in tags:
            tags.append("raises-exception")
    prepare_kernel(folder)
    client = capped_client(
        notebook, timeout=None, kernel_name=KERNEL_NAME, record_timing=False, resources={"metadata": {"path": "."}}
    )
    client.reset_execution_trackers()
    try:
        with client.setup_kernel():
            try:
                _run_cells(client, notebook, plan, folder, progress, run.keep_going)
            finally:
                _probe(client, notebook)
    finally:
        progress.execution_cells = {
            cell.get("execution_count"): number
            for number, cell in enumerate(notebook.cells, 1)
            if cell.cell_type == "code" and number in progress.ran and cell.get("execution_count")
        }
        for number, cell in enumerate(notebook.cells, start=1):
            if cell.cell_type == "code" and number not in progress.ran:
                cell.outputs, cell.execution_count = [], None  # stored outputs of cells that did not run now
            if number in originals:
                cell.source = originals[number]
        for text in _streams(notebook):
            print(text, end="")
        if run.executed:
            nbformat.write(notebook, run.executed)


def _run_cells(client, notebook, plan: cells.CellPlan, folder: Path, progress: _Progress, keep_going: bool) -> None:
    """Runs the planned cells in order; the first failure ends the run, or with `keep_going` is recorded and the next
    cell runs (a dead kernel ends it anyway)."""
    for number in plan.run:
        (folder / "progress").write_text(str(number))
        progress.ran.append(number)
        try:
            _run_cell(client, notebook, plan, number)
        except CellFailed as failure:
            if not keep_going or failure.dead_kernel:
                raise
            after = _after_earlier_error(str(failure), progress.failed)
            binds = sorted(cells.bound_names(notebook.cells[number - 1].source))
            progress.failed.append(
                {"cell": number, "error": str(failure), "after_earlier_error": after, "binds": binds}
            )
    if progress.failed:
        first = progress.failed[0]
        raise CellFailed(first["cell"], first["error"])


def _run_cell(client, notebook, plan: cells.CellPlan, number: int) -> None:
    """Runs one cell; raises `CellFailed` when it raised, showed an error, or did not raise as marked."""
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    cell = notebook.cells[number - 1]
    try:
        client.execute_cell(cell, number - 1)  # the kernel's own execution count: the sandbox reports by it
    except CellExecutionError as error:
        raise CellFailed(number, _error_line(error.ename, error.evalue)) from None
    except DeadKernelError:
        raise CellFailed(number, "DeadKernelError: the kernel died", dead_kernel=True) from None
    shown = [output for output in cell.outputs if output.get("output_type") == "error"]
    if number in plan.raises and not shown:
        raise CellFailed(number, "AssertionError: marked NBVAL_RAISES_EXCEPTION but raised none")
    if shown and number not in plan.raises:  # an error shown by code the cell ran (run_cell in a magic)
        raise CellFailed(number, _error_line(shown[0].get("ename", "Error"), shown[0].get("evalue", "")))


def _after_earlier_error(error: str, earlier: list[dict]) -> bool:
    """Whether a cell's error is a `NameError` for a name that an earlier failing cell would have bound."""
    name = re.match(r"NameError: name '([^']+)' is not defined", error)
    return bool(name) and any(name.group(1) in failed["binds"] for failed in earlier)


def _probe(client, notebook) -> None:
    """Asks the kernel what ran (the sandbox writes its report); a dead kernel answers nothing."""
    import nbformat

    probe = nbformat.v4.new_code_cell(PROBE_CODE)
    notebook.cells.append(probe)
    try:
        client.execute_cell(probe, len(notebook.cells) - 1, store_history=False)
    except Exception:  # noqa: BLE001 - no answer is an answer: the caller finds no sandbox report
        pass
    finally:
        notebook.cells.pop()


def _streams(notebook) -> list[str]:
    return [
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    ]


def _error_line(name: str, message) -> str:
    first = str(message or "").strip().splitlines()[:1]
    return f"{name}: {first[0]}" if first else name


def _one_line(error: BaseException) -> str:
    return _error_line(type(error).__name__, error)


def child_report(kind: str, progress: _Progress, settings: SandboxSettings, failure: CellFailed | None) -> ChildReport:
    """The run's report: its progress, its failure and the sandbox's account, places turned into cells (notebooks)
    or lines (scripts)."""
    report = ChildReport(
        kind,
        ran=progress.ran,
        gated=progress.gated,
        skipped=progress.skipped,
        failed_cell=failure.cell if failure else None,
        failed_cells=[{key: value for key, value in failed.items() if key != "binds"} for failed in progress.failed],
        error=str(failure) if failure else "",
        device_asked=os.environ.get(DEVICE_ENV, ""),
    )
    path = Path(settings.report)
    if not path.is_file():
        return report
    account = json.loads(path.read_text())
    if kind == "notebook":
        cell_of = progress.execution_cells
        places = lambda values: sorted({cell_of[value] for value in values if value in cell_of})  # noqa: E731
        pins = [{"value": pin["value"], "cell": cell_of.get(pin["place"])} for pin in account["pins"]]
        calls = [_placed(call, "cell", cell_of.get(call["place"])) for call in account["calls"]]
    else:
        places = lambda values: sorted(set(values))  # noqa: E731
        pins = [{"value": pin["value"], "line": pin["place"] or None} for pin in account["pins"]]
        calls = [_placed(call, "line", call["place"] or None) for call in account["calls"]]
    return dataclasses.replace(
        report,
        sandbox=account["installed"],
        python=account["python"],
        backend_used=account["backend_used"],
        framework_version=account["framework_version"],
        keras_version=account["keras_version"],
        pins=pins,
        trained=places(account["trained"]),
        datasets_loaded=places(account["datasets_loaded"]),
        downloads=account["downloads"],
        shell_failures=[
            {
                "command": failure["command"],
                "exit": failure["exit"],
                "cell": progress.execution_cells.get(failure["place"]),
            }
            for failure in account.get("shell_failures", [])
        ],
        calls=calls,
        device_used=account["device_used"],
        peak_memory_mb=account["peak_memory_mb"],
        peak_gpu_memory_mb=account["peak_gpu_memory_mb"],
    )


def _placed(call: dict, unit: str, place: int | None) -> dict:
    """A measured call with its place named as a cell or a line."""
    return {key: value for key, value in call.items() if key != "place"} | {unit: place}


def verify_file(run: ChildRun) -> ChildReport:
    """Runs the file with its sandbox settings (the job's function).

    Returns:
        The run's `ChildReport`.

    Raises:
        JobFailed: when the file failed; it carries the report all the same.
    """
    folder = Path(run.folder)
    folder.mkdir(parents=True, exist_ok=True)
    settings = dataclasses.replace(run.sandbox, script=run.path, report=str(folder / "sandbox.json"))
    settings.write(folder / "settings.json")
    os.environ[sandbox.SETTINGS_ENV] = str(folder / "settings.json")  # the notebook's kernel reads them there
    kind = "notebook" if run.path.endswith(".ipynb") else "script"
    progress = _Progress()
    try:
        if kind == "notebook":
            run_notebook(dataclasses.replace(run, sandbox=settings), folder, progress)
        else:
            run_script(Path(run.path), settings, progress)
    except CellFailed as failure:
        raise JobFailed(str(failure), child_report(kind, progress, settings, failure)) from None
    except Exception as error:  # noqa: BLE001 - the notebook machinery's own (a kernel that would not start)
        raise JobFailed(
            _one_line(error), child_report(kind, progress, settings, CellFailed(None, _one_line(error)))
        ) from None
    return child_report(kind, progress, settings, None)
