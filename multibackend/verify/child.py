"""Runs one script or notebook in this fresh process; used by `multibackend verify`.

    python -m multibackend.verify.child [--offline-datasets] [--executed OUT.ipynb] PATH

The backend comes from `KERAS_BACKEND`, set by the caller. A failure ends with
one line `ErrorType: message` on stderr and exit status 1. A notebook runs as
nbval runs it: cells marked `NBVAL_SKIP` are not run, cells marked
`NBVAL_RAISES_EXCEPTION` must raise; with `--executed`, the notebook with its new
outputs is written there, cell for cell like the original, for the caller to compare.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from multibackend.verify.outputs import cell_source, cell_tags, directives

# Marks the line that names a notebook's failure: the kernel shares stderr and may print after it.
ERROR_MARK = "multibackend-verify-error: "
OFFLINE_CELL = "import multibackend.course.offline as _multibackend_offline\n_multibackend_offline.install()"


def run_script(path: Path, offline: bool) -> None:
    if offline:
        from multibackend.course import offline as offline_datasets

        offline_datasets.install()
    sys.argv = [str(path)]
    sys.path.insert(0, str(path.parent))
    runpy.run_path(str(path), run_name="__main__")


def run_notebook(path: Path, offline: bool, executed: Path | None = None) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    marks = [directives(cell_source(cell), cell_tags(cell)) if cell.cell_type == "code" else None
             for cell in notebook.cells]  # fmt: skip
    for cell, mark in zip(notebook.cells, marks):
        if mark and mark.skip:
            cell.cell_type = "raw"  # kept in place, so cell numbers stay those of the file; nbclient runs no raw cell
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        elif mark and mark.raises_exception:
            cell.metadata.setdefault("tags", [])
            if "raises-exception" not in cell.metadata["tags"]:
                cell.metadata["tags"].append("raises-exception")  # nbclient's own way to let a cell raise
    if offline:
        notebook.cells.insert(0, nbformat.v4.new_code_cell(OFFLINE_CELL))
    client = NotebookClient(notebook, timeout=None, kernel_name="python3", record_timing=False,
                            resources={"metadata": {"path": "."}})  # fmt: skip
    try:
        client.execute()
    except CellExecutionError as error:
        for output in _outputs(notebook):
            print(output, end="")
        first_line = (error.evalue or "").strip().splitlines()[:1]
        print(ERROR_MARK + (f"{error.ename}: {first_line[0]}" if first_line else error.ename), file=sys.stderr)
        raise SystemExit(1) from None
    if offline:
        del notebook.cells[0]
    for output in _outputs(notebook):
        print(output, end="")
    for number, (cell, mark) in enumerate(zip(notebook.cells, marks), start=1):
        if mark and mark.skip:
            cell.cell_type = "code"
            cell.outputs, cell.execution_count = [], None
        elif mark and mark.raises_exception and not any(out.get("output_type") == "error" for out in cell.outputs):
            print(f"{ERROR_MARK}AssertionError: cell {number} is marked NBVAL_RAISES_EXCEPTION but raised none",
                  file=sys.stderr)  # fmt: skip
            raise SystemExit(1)
    if executed is not None:
        nbformat.write(notebook, executed)


def _outputs(notebook) -> list[str]:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
    return texts


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m multibackend.verify.child")
    parser.add_argument("--offline-datasets", action="store_true")
    parser.add_argument("--executed", type=Path, help="write the run notebook here (notebooks only)")
    parser.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    path = args.path.resolve()
    if path.suffix == ".ipynb":
        run_notebook(path, args.offline_datasets, args.executed)
    else:
        run_script(path, args.offline_datasets)


if __name__ == "__main__":
    main(sys.argv[1:])
