"""Runs one script or notebook in this fresh process; used by `multibackend verify`.

    python -m multibackend.verify.child [--offline-datasets] PATH

The backend comes from `KERAS_BACKEND`, set by the caller. A failure ends with
one line `ErrorType: message` on stderr and exit status 1.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

OFFLINE_CELL = "import multibackend.course.offline as _multibackend_offline\n_multibackend_offline.install()"


def run_script(path: Path, offline: bool) -> None:
    if offline:
        from multibackend.course import offline as offline_datasets

        offline_datasets.install()
    sys.argv = [str(path)]
    sys.path.insert(0, str(path.parent))
    runpy.run_path(str(path), run_name="__main__")


def run_notebook(path: Path, offline: bool) -> None:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    notebook = nbformat.read(path, as_version=4)
    if offline:
        notebook.cells.insert(0, nbformat.v4.new_code_cell(OFFLINE_CELL))
    client = NotebookClient(notebook, timeout=None, kernel_name="python3", resources={"metadata": {"path": "."}})
    try:
        client.execute()
    except CellExecutionError as error:
        for output in _outputs(notebook):
            print(output, end="")
        first_line = (error.evalue or "").strip().splitlines()[:1]
        print(f"{error.ename}: {first_line[0]}" if first_line else error.ename, file=sys.stderr)
        raise SystemExit(1) from None
    for output in _outputs(notebook):
        print(output, end="")


def _outputs(notebook) -> list[str]:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                texts.append(output.get("text", ""))
    return texts


def main(argv: list[str]) -> None:
    offline = "--offline-datasets" in argv
    path = Path([arg for arg in argv if arg != "--offline-datasets"][0]).resolve()
    if path.suffix == ".ipynb":
        run_notebook(path, offline)
    else:
        run_script(path, offline)


if __name__ == "__main__":
    main(sys.argv[1:])
