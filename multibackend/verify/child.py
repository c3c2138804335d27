"""Runs one script or notebook in this fresh process; used by `multibackend verify`.

    python -m multibackend.verify.child [--offline-datasets] [--smoke] [--smoke-sample TRAIN,TEST]
        [--respect-backend-pins] [--shell skip-installs|run] [--executed OUT.ipynb] [--report-dir DIR] PATH

The backend comes from `KERAS_BACKEND`, set by the caller. The file runs with
verify's sandbox installed (`sandbox.py`): in this process for a script, through
an IPython start-up file in the notebook's kernel. A notebook runs as nbval runs
it (`NBVAL_SKIP` cells are not run, `NBVAL_RAISES_EXCEPTION` cells must raise),
and as `cells.plan` says: cells gated to another backend and shell escapes that
install are not run. A cell that shows an error fails the run even when the
kernel reports success (a cell magic that runs its body with `run_cell` does).

Written to the report folder: `child.json` (cells run, gated, skipped, the cell
that failed and its error, and the sandbox's account: the backend that ran,
KERAS_BACKEND assignments, cells that trained) and `progress` (the cell
running now, for a caller that has to stop the run). A failure also ends with
one line `ErrorType: message` on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
from pathlib import Path

from multibackend.verify import cells, sandbox
from multibackend.verify.sandbox import SandboxSettings

# Marks the line that names a notebook's failure: the kernel shares stderr and may print after it.
ERROR_MARK = "multibackend-verify-error: "
KERNEL_NAME = "multibackend-verify"
STARTUP_FILE = "00-multibackend-verify.py"
STARTUP_CODE = "import multibackend.verify.sandbox as _mb_sandbox\n_mb_sandbox.install()\ndel _mb_sandbox\n"
PROBE_CODE = "import multibackend.verify.sandbox as _mb_sandbox\n_mb_sandbox.write_report()\ndel _mb_sandbox\n"
# Printed text kept per cell: a cell that prints without end must cost neither memory here nor disk.
CELL_OUTPUT_LIMIT = 1 << 20


class CellFailed(Exception):
    """A notebook cell failed: its number and the one-line error."""

    def __init__(self, cell: int, error: str):
        super().__init__(error)
        self.cell = cell


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


def run_script(path: Path, settings: SandboxSettings, report: dict) -> None:
    """Runs a script as `__main__` in this process, with the sandbox installed."""
    sandbox.install(settings)
    sys.argv = [str(path)]
    sys.path.insert(0, str(path.parent))
    report["ran"] = [1]
    try:
        runpy.run_path(str(path), run_name="__main__")
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


def run_notebook(
    path: Path, settings: SandboxSettings, shell: str, executed: Path | None, folder: Path, report: dict
) -> None:
    """Runs a notebook's cells as `cells.plan` says, then asks its kernel what ran; fills `report`."""
    import nbformat

    notebook = nbformat.reads(path.read_bytes().decode("utf-8-sig"), as_version=4)  # older formats converted
    plan = cells.plan(notebook, settings.backend, shell)
    report["gated"] = [gated.to_json() for gated in plan.gated]
    report["skipped"] = [skipped.to_json() for skipped in plan.skipped]
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
    ran: list[int] = report.setdefault("ran", [])
    try:
        with client.setup_kernel():
            try:
                _run_cells(client, notebook, plan, folder, ran)
            finally:
                _probe(client, notebook)
    finally:
        execution_cells = {
            cell.get("execution_count"): number
            for number, cell in enumerate(notebook.cells, 1)
            if cell.cell_type == "code" and number in ran
        }
        report["execution_cells"] = {str(count): number for count, number in execution_cells.items() if count}
        for number, cell in enumerate(notebook.cells, start=1):
            if cell.cell_type == "code" and number not in ran:
                cell.outputs, cell.execution_count = [], None  # stored outputs of cells that did not run now
            if number in originals:
                cell.source = originals[number]
        for text in _streams(notebook):
            print(text, end="")
        if executed is not None:
            nbformat.write(notebook, executed)


def _run_cells(client, notebook, plan: cells.CellPlan, folder: Path, ran: list[int]) -> None:
    from nbclient.exceptions import CellExecutionError, DeadKernelError

    for number in plan.run:
        cell = notebook.cells[number - 1]
        (folder / "progress").write_text(str(number))
        ran.append(number)
        try:
            client.execute_cell(cell, number - 1)  # the kernel's own execution count: the sandbox reports by it
        except CellExecutionError as error:
            first_line = (error.evalue or "").strip().splitlines()[:1]
            raise CellFailed(number, f"{error.ename}: {first_line[0]}" if first_line else error.ename) from None
        except DeadKernelError:
            raise CellFailed(number, "DeadKernelError: the kernel died") from None
        shown = [output for output in cell.outputs if output.get("output_type") == "error"]
        if number in plan.raises and not shown:
            raise CellFailed(number, "AssertionError: marked NBVAL_RAISES_EXCEPTION but raised none")
        if shown and number not in plan.raises:  # an error shown by code the cell ran (run_cell in a magic)
            first_line = str(shown[0].get("evalue", "")).strip().splitlines()[:1]
            raise CellFailed(number, f"{shown[0].get('ename', 'Error')}: {first_line[0] if first_line else ''}")


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


def _with_sandbox_report(report: dict, settings: SandboxSettings) -> dict:
    """The child's report with the sandbox's account, places turned into cells (notebooks) or lines (scripts)."""
    path = Path(settings.report)
    if not path.is_file():
        return {**report, "sandbox": False}
    account = json.loads(path.read_text())
    if report["kind"] == "notebook":
        cell_of = {int(count): number for count, number in report.get("execution_cells", {}).items()}
        places = lambda values: sorted({cell_of[value] for value in values if value in cell_of})  # noqa: E731
        pins = [{"value": pin["value"], "cell": cell_of.get(pin["place"])} for pin in account["pins"]]
    else:
        places = lambda values: sorted(set(values))  # noqa: E731
        pins = [{"value": pin["value"], "line": pin["place"] or None} for pin in account["pins"]]
    return {
        **report,
        "sandbox": account["installed"],
        "python": account["python"],
        "backend_used": account["backend_used"],
        "framework_version": account["framework_version"],
        "keras_version": account["keras_version"],
        "pins": pins,
        "trained": places(account["trained"]),
        "datasets_loaded": places(account["datasets_loaded"]),
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m multibackend.verify.child")
    parser.add_argument("--offline-datasets", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="predict exempt from Keras's step cap")
    parser.add_argument("--smoke-sample", help="TRAIN,TEST: images served")
    parser.add_argument("--seed", type=int, help="keras.utils.set_random_seed(SEED) as Keras is imported")
    parser.add_argument("--respect-backend-pins", action="store_true")
    parser.add_argument("--shell", choices=cells.SHELL_MODES, default=cells.SHELL_MODES[0])
    parser.add_argument("--executed", type=Path, help="write the run notebook here (notebooks only)")
    parser.add_argument("--report-dir", type=Path, help="folder for child.json (default: a temporary one)")
    parser.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    if args.report_dir is not None:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        run(args, args.report_dir.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="multibackend-child-") as folder:
        run(args, Path(folder))


def run(args: argparse.Namespace, folder: Path) -> None:
    """Runs the file with the sandbox's settings in `folder`, and writes `child.json` there whatever happens."""
    path = args.path.resolve()
    sample = tuple(int(part) for part in args.smoke_sample.split(",")) if args.smoke_sample else None
    settings = SandboxSettings(
        backend=os.environ.get("KERAS_BACKEND", ""),
        respect_pins=args.respect_backend_pins,
        offline=args.offline_datasets,
        smoke=args.smoke,
        smoke_sample=sample,
        seed=args.seed,
        script=str(path),
        report=str(folder / "sandbox.json"),
    )
    settings.write(folder / "settings.json")
    os.environ[sandbox.SETTINGS_ENV] = str(folder / "settings.json")
    report: dict = {
        "kind": "notebook" if path.suffix == ".ipynb" else "script",
        "ran": [],
        "gated": [],
        "skipped": [],
        "failed_cell": None,
        "error": "",
    }
    try:
        if report["kind"] == "notebook":
            run_notebook(path, settings, args.shell, args.executed, folder, report)
        else:
            run_script(path, settings, report)
    except CellFailed as failure:
        report.update(failed_cell=failure.cell, error=str(failure))
        print(ERROR_MARK + str(failure), file=sys.stderr)
        raise SystemExit(1) from None
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            report.update(failed_cell=1, error=f"SystemExit: {exit_.code}")
        raise
    except BaseException as error:
        message = str(error).strip().splitlines()[:1]
        report.update(
            failed_cell=1 if report["kind"] == "script" else None,
            error=f"{type(error).__name__}: {message[0]}" if message else type(error).__name__,
        )
        raise
    finally:
        (folder / "child.json").write_text(json.dumps(_with_sandbox_report(report, settings)))


if __name__ == "__main__":
    main(sys.argv[1:])
