"""`multibackend verify`: run course scripts and notebooks under every backend, and tell what really ran.

Each (file, backend) cell of the matrix runs in a fresh process with
`KERAS_BACKEND` set, in a fresh working folder that is also its HOME (so nothing
lands in the user's home), under a time limit; several cells may run side by
side (`jobs`). Inside, verify's sandbox (`sandbox.py`) keeps the backend asked
for and reports the backend Keras actually used: a run that used another one is
never "passed". Shell escapes that install packages are not run (`cells.py`);
cells gated to another backend are counted, not run. A notebook that carries
stored outputs is compared, cell by cell, with what it prints now (`outputs`:
nbval's conventions, numbers within a tolerance). Each file then gets one
verdict across backends (`verdicts.py`).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import sys
import tempfile
import tokenize
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from multibackend.results import JsonRecord, strict_json
from multibackend.runtime import templating
from multibackend.runtime.backend import BACKENDS, INSTALL_HINTS, installed_backends
from multibackend.runtime.children import end_all_children, run_child
from multibackend.runtime.errors import UsageError, last_line
from multibackend.runtime.outputs import check_output_files, name_error, write_together
from multibackend.verify import cells as cell_plans
from multibackend.verify import containment, environment, junit, outputs, shards, verdicts
from multibackend.verify.child import ERROR_MARK
from multibackend.verify.shards import Shard

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
FRAMEWORKS = ("tensorflow", "torch", "jax", "jaxlib")
OFFLINE_HINT = (
    " (hint: no network; add --offline-datasets on to serve keras.datasets.mnist from the verified local copy)"
)
# A smoke run: Keras's own debugging cap, every epoch of fit and every evaluate at most this many steps. The epochs
# stay as written: course code plots its histories against the epochs it asked for (`range(1, 11)` in Deep Learning
# with Python's chapter 5 failed under KERAS_MAX_EPOCHS=1). predict runs uncapped (see `sandbox`). Served datasets
# stay whole unless a sample is asked for: course code splits them by index (`images[10000:]` in its chapter 7 was
# empty with a 1,024-image slice).
SMOKE_MAX_STEPS = 16

# Statuses of a row that count as a pass, or as neither pass nor failure.
NOT_FAILURES = ("passed", "not installed", "pinned")
OTHER_SHARD = "in another shard"  # a matrix entry of a shard's report, never a status of a run


@dataclass
class Cell:
    """The outcome of one file under one backend.

    Attributes:
        status: passed | failed | output differs | timed out | not installed | wrong backend | pinned.
        backend_used: The backend Keras used in the run's process ("" when the file never imported Keras).
        code_cells_ran: Code cells run (a script counts as one).
        code_cells_gated: Cells gated to another backend: `{cell, backend}`.
        code_cells_skipped: Cells or lines not run: `{cell, reason}` (shell installs, NBVAL_SKIP).
        failed_cell: The cell that failed or was running when the time ran out.
        pins: The file's assignments of KERAS_BACKEND to another backend: `{value, cell}` or `{value, line}`.
        trained: Cells (notebooks) or lines (scripts) that trained or evaluated a Keras model.
        last_line: The last printed line with a number from a cell that trained or evaluated.
    """

    file: str
    backend: str
    status: str
    seconds: float
    error: str = ""
    differences: list[str] = field(default_factory=list)  # one line per cell whose output differs
    last_line: str = ""
    backend_used: str = ""
    framework_version: str = ""
    code_cells_ran: int = 0
    code_cells_gated: list[dict] = field(default_factory=list)
    code_cells_skipped: list[dict] = field(default_factory=list)
    failed_cell: int | None = None
    pins: list[dict] = field(default_factory=list)
    trained: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class VerifyReport(JsonRecord):
    """`verify.json`: a course's files under each backend, the run's settings and a verdict per file
    (`schemas/verify.schema.json`). `verify` makes one from its runs and `verify merge` from shards.

    Attributes:
        cells: One per file and backend: a `Cell`'s fields.
        verdicts: Per file: portable, fails everywhere, backend-specific or single-backend by design.
        shard: `{index, count}` for a shard's share of the runs; None for a whole run and a merge.
        merged_from: The shards a merge joined.
    """

    SCHEMA: ClassVar[str] = "verify"

    backends: list[str]
    files: list[str]
    cells: list[dict]
    warnings: list[str]
    passed: bool
    created: str
    smoke: bool | None = None
    smoke_sample: list[int] | None = field(default=None, metadata={"null": True})
    seed: int | None = field(default=None, metadata={"null": True})
    offline_datasets: bool | None = None
    timeout_seconds: float | None = None
    compare_outputs: str | None = None
    rtol: float | None = None
    atol: float | None = None
    jobs: int | None = None
    respect_backend_pins: bool | None = None
    shell: str | None = None
    verdicts: dict[str, str] | None = None
    verdict_details: dict[str, str] | None = None
    shard: dict | None = field(default=None, metadata={"null": True})
    plan: list[dict] | None = None
    pass_env: list[str] | None = None
    merged_from: list[str] | None = None


@dataclass(frozen=True)
class OutputCheck:
    """How notebook outputs are compared: `mode` (all | marked | off) and the tolerance for numbers."""

    mode: str = "all"
    rtol: float = outputs.DEFAULT_RTOL
    atol: float = outputs.DEFAULT_ATOL


@dataclass(frozen=True)
class VerifyOptions:
    """How each file runs.

    Attributes:
        timeout: Seconds per file and backend.
        offline: Serve `keras.datasets.mnist.load_data()` from the local copy.
        check: How stored notebook outputs are compared.
        jobs: How many runs go side by side (each gets its share of the cores).
        smoke: Cap training (see `SMOKE_MAX_STEPS`): a quick check that everything runs.
        smoke_sample: In a smoke run, serve only this many (training, test) images of a served dataset.
        seed: Seed Keras's random generators in each run as Keras is imported (None: as the file does).
        respect_pins: Let a file's own `KERAS_BACKEND` assignments take effect (default: the backend asked for wins).
        shell: "skip-installs" (default) or "run": shell escapes that install packages.
        pass_env: More of the caller's variables that each run gets (names or fnmatch patterns; see `environment`).
    """

    timeout: float = 600
    offline: bool = False
    check: OutputCheck = OutputCheck()
    jobs: int = 1
    smoke: bool = False
    smoke_sample: tuple[int, int] | None = None
    seed: int | None = None
    respect_pins: bool = False
    shell: str = cell_plans.SHELL_MODES[0]
    pass_env: tuple[str, ...] = ()


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
    if path.suffix != ".ipynb":
        try:
            with tokenize.open(path) as stream:  # as Python reads a script: a PEP 263 coding line, a UTF-8 BOM
                return stream.read()
        except (SyntaxError, UnicodeDecodeError):
            raise UsageError(f"{path}: not UTF-8 text, and no coding line (PEP 263) says what it is") from None
        except OSError as error:
            raise UsageError(f"{path}: unreadable ({error.strerror or error})") from None
    code = [cell for cell in read_notebook(path)["cells"] if cell.get("cell_type") == "code"]
    lines = []
    for cell in code:
        if not cell_plans.gate(cell):
            text = outputs.cell_source(cell)
            lines += [line for line in text.splitlines() if not line.lstrip().startswith(("%", "!"))]
    return "\n".join(lines)


def framework_imports(path: Path) -> list[tuple[str, int]]:
    """The backend frameworks that a file imports directly, with the line (outside backend-gated cells)."""
    try:
        tree = ast.parse(source_of(path))
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found += [(name, node.lineno) for name in names if name.split(".")[0] in FRAMEWORKS]
    return found


def portability_warnings(path: Path) -> list[str]:
    """Lines that import a backend framework directly: the code is not backend-agnostic."""
    try:
        ast.parse(source_of(path))
    except SyntaxError as error:
        return [f"{path}: cannot parse ({error.msg}, line {error.lineno})"]
    return [
        f"{path}: imports {name} (line {line}): not portable across Keras backends"
        for name, line in framework_imports(path)
    ]


def stored_notebook(path: Path) -> dict | None:
    """The notebook at `path` when it carries outputs to compare with, else None."""
    if path.suffix != ".ipynb":
        return None
    notebook = read_notebook(path)
    return notebook if outputs.has_stored_outputs(notebook) else None


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


def run_cell(path: Path, backend: str, options: VerifyOptions = VerifyOptions()) -> Cell:
    """Runs one file under one backend in a fresh process and working folder; tells what ran and how it went.

    A run that did not pass shows no result line: what it printed last is its error, not its result.
    """
    try:
        cell = _run_and_judge(path, backend, options)
    except UsageError as error:  # the file changed under the run (deleted, rewritten): this run's failure alone
        cell = Cell(str(path), backend, "failed", 0.0, f"could not be read when its run started: {error}")
    if cell.status not in ("passed", "output differs"):
        cell.last_line = ""
    return cell


def _run_and_judge(path: Path, backend: str, options: VerifyOptions) -> Cell:
    stored = stored_notebook(path) if options.check.mode != "off" else None
    with tempfile.TemporaryDirectory(prefix="multibackend-verify-") as folder:
        workdir = Path(folder)
        reports = workdir / ".multibackend-verify"
        executed = reports / "executed.ipynb"
        command = [
            sys.executable,
            "-m",
            "multibackend.verify.child",
            "--report-dir",
            str(reports),
            "--shell",
            options.shell,
            "--executed",
            str(executed),
        ]
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
        env = child_environment(backend, workdir, options)
        # Its own session and namespaces: a timeout, or its end, also ends a notebook's kernel and anything the
        # script started, and nothing else.
        read_only = None if options.shell == cell_plans.SHELL_MODES[0] else []  # --shell run: installs allowed
        finished = run_child(
            containment.contained([*command, str(path.resolve())], read_only),
            timeout=options.timeout,
            env=env,
            cwd=folder,
        )
        report = _read_json(reports / "child.json")
        progress = _read_text(reports / "progress")
        new = _read_json(executed) if path.suffix == ".ipynb" else None
    cell = Cell(
        str(path),
        backend,
        "passed",
        finished.seconds,
        backend_used=report.get("backend_used", ""),
        framework_version=report.get("framework_version", ""),
        code_cells_ran=len(report.get("ran", [])),
        code_cells_gated=report.get("gated", []),
        code_cells_skipped=report.get("skipped", []),
        failed_cell=report.get("failed_cell"),
        pins=report.get("pins", []),
        trained=report.get("trained", []),
    )
    cell.last_line = _result_line(new, finished.stdout, cell.trained)
    if finished.timed_out:
        cell.failed_cell = int(progress) if progress.isdigit() else (1 if path.suffix == ".py" else None)
        where = f" (in cell {cell.failed_cell})" if path.suffix == ".ipynb" and cell.failed_cell else ""
        cell.status, cell.error = "timed out", f"no result after {options.timeout:g} s{where}"
        return cell
    if cell.backend_used and cell.backend_used != backend:
        pinned = options.respect_pins and any(pin["value"] == cell.backend_used for pin in cell.pins)
        cell.status = "pinned" if pinned else "wrong backend"
        cell.error = (
            f"{'pinned to' if pinned else 'ran'} {cell.backend_used}"
            + (f" ({_where(cell.pins[-1])})" if cell.pins else "")
            + f", not {backend}"
        )
        return cell
    if finished.returncode != 0:
        cell.status = "failed"
        cell.error = report.get("error") or first_error_line(finished.stderr)
        if not options.offline and ("mnist.npz" in finished.stderr or "URL fetch failure" in finished.stderr):
            cell.error += OFFLINE_HINT
        if path.suffix == ".ipynb" and cell.failed_cell:
            cell.error = f"cell {cell.failed_cell}: {cell.error}"
        return cell
    if not report.get("sandbox"):
        cell.status = "failed"
        cell.error = "verify could not read which backend ran (its sandbox did not report from the run's process)"
        return cell
    if stored is not None and new is not None:
        skip = _not_compared(stored, backend, options, report)
        mismatches = outputs.compare_notebooks(
            stored, new, mode=options.check.mode, rtol=options.check.rtol, atol=options.check.atol, skip=skip
        )
        if mismatches:
            cell.differences = [mismatch.summary() for mismatch in mismatches]
            cell.status, cell.error = "output differs", cell.differences[0]
    return cell


def _not_compared(stored: dict, backend: str, options: VerifyOptions, report: dict) -> set[int]:
    """Cells whose stored outputs are not compared: gated, skipped, and in a smoke run all from the first that
    trained (or loaded a sampled dataset): their outputs reflect a capped training or a slice of the data."""
    skip = cell_plans.plan(stored, backend, options.shell).not_compared
    if options.smoke:
        diverged = [*report.get("trained", []), *(report.get("datasets_loaded", []) if options.smoke_sample else [])]
        if diverged:
            skip |= set(range(min(diverged), len(stored.get("cells", [])) + 1))
    return skip


def _result_line(new: dict | None, stdout: str, trained: list[int]) -> str:
    """The line a reader looks for: the last printed line with a number from a cell that trained or evaluated."""
    if not trained:
        return ""
    if new is None:  # a script is one cell
        return outputs.result_line(outputs.normalize(stdout))
    return outputs.last_printed_line(new, only=set(trained))


def _where(pin: dict) -> str:
    return f"cell {pin['cell']}" if pin.get("cell") else f"line {pin['line']}" if pin.get("line") else "at run time"


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


def first_error_line(stderr: str) -> str:
    """The line that names the error: the notebook child's marked line, else the last line of a traceback."""
    marked = [line for line in stderr.splitlines() if line.startswith(ERROR_MARK)]
    return marked[-1].removeprefix(ERROR_MARK) if marked else last_line(stderr, "failed with no error output")


def verify(
    paths: list[str],
    backends: list[str] | None = None,
    options: VerifyOptions = VerifyOptions(),
    *,
    out_dir: str = "results",
    junit_xml: str | None = None,
    progress=print,
    shard: Shard | None = None,
    durations: dict[tuple[str, str], float] | None = None,
) -> dict:
    """Runs every file under every backend; writes `verify.json`, `verify.md` and `verify.html` to `out_dir`.

    Args:
        paths: Scripts, notebooks and folders holding them.
        backends: The backends to run under (default: all three).
        options: How each file runs (`VerifyOptions`).
        out_dir: The folder for the results.
        junit_xml: Where to write a JUnit XML file (one test case per file and backend), if anywhere.
        progress: Called with a line of text as each cell ends.
        shard: Run only this share of the (file, backend) runs (see `shards`); verdicts wait for the merge.
        durations: Seconds per (file, backend) from an earlier run, to balance the shares.

    Returns:
        The payload: cells, verdicts, warnings and `passed`.
    """
    if options.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    if options.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    files = collect_files(paths)
    check_outputs(Path(out_dir), junit_xml, inputs=files)
    for path in files:
        source_of(path)  # an unreadable script or notebook is bad input: one line, before anything runs
    chosen = list(backends or BACKENDS)
    warnings = [warning for path in files for warning in portability_warnings(path)]
    for warning in warnings:
        progress(f"warning: {warning}")
    if options.offline:
        from multibackend.course.data import find_mnist

        find_mnist()  # a bad MULTIBACKEND_DATA_DIR is bad input: one line, before anything runs
    available = set(installed_backends())
    if not available & set(chosen):
        raise UsageError(f"none of the backends {', '.join(chosen)} is installed here: nothing would be verified")
    runs = [(path, backend) for path in files for backend in chosen]
    plan = shards.plan([(str(path), backend) for path, backend in runs], shard.count if shard else 1, durations)
    if shard is not None:
        mine = {(entry["file"], entry["backend"]) for entry in plan if entry["shard"] == shard.index}
        runs = [(path, backend) for path, backend in runs if (str(path), backend) in mine]
        progress(f"shard {shard}: {len(runs)} of {len(files) * len(chosen)} runs")
    cells = run_matrix(
        runs,
        available,
        jobs=options.jobs,
        progress=progress,
        run=lambda path, backend: run_cell(path, backend, options),
    )
    rows = [asdict(cell) for cell in cells]
    # A shard sees part of each file's runs: its verdicts would be about that part.
    found = (
        file_findings(files, rows, chosen, options)
        if shard is None
        else {"verdicts": {}, "details": {}, "warnings": []}
    )
    for warning in found["warnings"]:
        progress(f"warning: {warning}")
    report = VerifyReport(
        backends=chosen,
        files=[str(path) for path in files],
        smoke=options.smoke,
        smoke_sample=list(options.smoke_sample) if options.smoke_sample else None,
        seed=options.seed,
        offline_datasets=options.offline,
        timeout_seconds=options.timeout,
        compare_outputs=options.check.mode,
        rtol=options.check.rtol,
        atol=options.check.atol,
        jobs=options.jobs,
        respect_backend_pins=options.respect_pins,
        shell=options.shell,
        cells=rows,
        verdicts=found["verdicts"],
        verdict_details=found["details"],
        warnings=warnings + found["warnings"],
        passed=all(cell.status in NOT_FAILURES for cell in cells),
        created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        shard={"index": shard.index, "count": shard.count} if shard else None,
        plan=plan,
        pass_env=list(options.pass_env),
    )
    payload = report.to_json()
    write_outputs(payload, Path(out_dir), junit_xml)
    return payload


def merge_runs(folders: list[str], *, out_dir: str = "results", junit_xml: str | None = None, progress=print) -> dict:
    """Joins the `verify.json` of shards run on many machines into one matrix, written as `verify` writes one.

    Args:
        folders: Folders holding a `verify.json` (or the files themselves), one per shard or machine.
        out_dir: The folder for the merged `verify.json`, `verify.md` and `verify.html`.
        junit_xml: Where to write a JUnit XML file of the merged matrix, if anywhere.
        progress: Called with lines of text (warnings).

    Returns:
        The merged payload; its verdicts are the whole course's.

    Raises:
        UsageError: for an unreadable file, shards of different runs, a run given twice or a shard missing.
    """
    given = [Path(folder) / "verify.json" if Path(folder).is_dir() else Path(folder) for folder in folders]
    check_outputs(Path(out_dir), junit_xml, inputs=given)
    sources = [(folder, shards.read_verify_file(Path(folder), "verify merge:")) for folder in folders]
    merged = shards.merge(sources)
    files = [Path(file) for file in merged["files"]]
    options = VerifyOptions(respect_pins=bool(merged["respect_backend_pins"]))
    found = file_findings(files, merged["cells"], merged["backends"], options)
    for warning in found["warnings"]:
        progress(f"warning: {warning}")
    earlier = [warning for _, payload in sources for warning in payload["warnings"]]
    merged = VerifyReport.from_json(
        {
            **merged,
            "verdicts": found["verdicts"],
            "verdict_details": found["details"],
            "warnings": list(dict.fromkeys(earlier + found["warnings"])),
            "passed": all(cell["status"] in NOT_FAILURES for cell in merged["cells"]),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        }
    ).to_json()
    write_outputs(merged, Path(out_dir), junit_xml)
    return merged


OUTPUT_NAMES = ("verify.json", "verify.md", "verify.html")


def check_outputs(out: Path, junit_xml: str | None, inputs: list[Path]) -> None:
    """Refuses, before any work, outputs that could not be written or would overwrite an input or each other."""
    paths = [out / name for name in OUTPUT_NAMES] + ([Path(junit_xml)] if junit_xml else [])
    check_output_files(paths, inputs, role="verify: output")


def write_outputs(payload: dict, out: Path, junit_xml: str | None) -> None:
    """Writes `verify.json`, `verify.md`, `verify.html` to `out`, and the JUnit XML file when asked, as one set."""
    files = {
        out / "verify.json": json.dumps(strict_json(payload), indent=2, allow_nan=False) + "\n",
        out / "verify.md": markdown_matrix(payload) + "\n",
        out / "verify.html": html_matrix(payload),
    }
    if junit_xml:
        files[Path(junit_xml)] = junit.to_bytes(payload)
    write_together(files)


def file_findings(files: list[Path], rows: list[dict], chosen: list[str], options: VerifyOptions) -> dict:
    """Per file: its verdict with the line that explains it, and warnings (KERAS_BACKEND assignments, cells run
    nowhere)."""
    result: dict = {"verdicts": {}, "details": {}, "warnings": []}
    for path in files:
        own = [row for row in rows if row["file"] == str(path)]
        try:
            imported = framework_imports(path)
        except UsageError:  # a merge on a machine without the course's files: judged by the runs alone
            imported = []
        verdict = verdicts.file_verdict(own, imported[0][0].split(".")[0] if imported else "")
        result["verdicts"][str(path)], result["details"][str(path)] = verdict.kind, verdict.detail
        pins = {(pin["value"], _where(pin)) for row in own for pin in row["pins"]}
        for value, where in sorted(pins):
            consequence = (
                "runs on it whatever is asked (--respect-backend-pins)"
                if options.respect_pins
                else "each backend ran as asked (--respect-backend-pins runs it as written)"
            )
            result["warnings"].append(f"{path}: sets KERAS_BACKEND={value} ({where}); {consequence}")
        result["warnings"] += verdicts.cells_run_nowhere(str(path), own, chosen)
    return result


def run_matrix(wanted: list[tuple[Path, str]], available: set[str], *, jobs: int, progress, run) -> list[Cell]:
    """Runs `run(path, backend)` for every (file, backend) pair, `jobs` at a time; returns the cells in that order.

    An interruption (Ctrl-C, SIGTERM) ends every running child before it goes on up.
    """
    cells: dict[tuple[Path, str], Cell] = {}
    for path, backend in wanted:
        if backend not in available:  # not a failure of the script: it was not run
            cells[path, backend] = Cell(str(path), backend, "not installed", 0.0, INSTALL_HINTS[backend])
            _report(progress, cells[path, backend])
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="verify") as pool:
        futures = {
            pool.submit(run, path, backend): (path, backend) for path, backend in wanted if (path, backend) not in cells
        }
        try:
            for future in as_completed(futures):
                cells[futures[future]] = future.result()
                _report(progress, cells[futures[future]])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            end_all_children()
            raise
    return [cells[key] for key in wanted]


def _report(progress, cell: Cell) -> None:
    used = f" [ran {cell.backend_used}]" if cell.backend_used and cell.backend_used != cell.backend else ""
    progress(
        f"{cell.status:>14}  {cell.seconds:6.1f} s  {cell.backend:<10} {cell.file}{used}"
        + (f"  {cell.error}" if cell.error else "")
    )


def _cell_text(cell: dict) -> str:
    """A row of the matrix as text: status, seconds, the backend that ran, the cells that ran, gated, skipped."""
    status = cell["status"]
    if status == OTHER_SHARD:
        return "in another shard"
    if status == "not installed":
        return f"not installed ({cell['error']})"
    text = f"{status if status in ('passed', 'pinned') else status.upper()} ({cell['seconds']:.1f} s)"
    if status not in ("passed",):
        text += f": {cell['error']}"
    return text + _ran_text(cell)


def _ran_text(cell: dict) -> str:
    parts = []
    if cell.get("backend_used") == "" and cell["status"] == "passed":
        parts.append("keras not imported")
    if cell.get("code_cells_gated"):
        parts.append(f"{len(cell['code_cells_gated'])} gated")
    if cell.get("code_cells_skipped"):
        parts.append(f"{len(cell['code_cells_skipped'])} skipped")
    ran = cell.get("code_cells_ran", 0)
    counts = f"{ran} cell{'s' if ran != 1 else ''} ran" + (f", {', '.join(parts)}" if parts else "")
    return f" · {counts}" if ran or parts else ""


def _context(payload: dict) -> dict:
    defaults = {**asdict(Cell("", "", "", 0.0)), "backend_used": None}  # fields a file from an older version lacks
    cells = {(cell["file"], cell["backend"]): {**defaults, **cell} for cell in payload["cells"]}
    for file in payload["files"]:  # a shard's matrix: the runs of the other shards
        for backend in payload["backends"]:
            cells.setdefault((file, backend), {**defaults, "file": file, "backend": backend, "status": OTHER_SHARD})
    numbers = {key: ", ".join(outputs.numbers_in(cell.get("last_line", ""))) for key, cell in cells.items()}
    return {
        **payload,
        "cells": cells,
        "numbers": numbers,
        "cell_text": _cell_text,
        "ran_text": _ran_text,
        "compare_outputs": payload.get("compare_outputs", "off"),
        "verdicts": payload.get("verdicts", {}),
        "verdict_details": payload.get("verdict_details", {}),
        "smoke": payload.get("smoke", False),
        "smoke_sample": payload.get("smoke_sample"),
        "shard": payload.get("shard"),
        "merged_from": payload.get("merged_from"),
    }


def markdown_matrix(payload: dict) -> str:
    """The verdicts, then the file x backend matrix as a Markdown table, then the warnings."""
    return templating.render("multibackend.verify", "verify.md.j2", _context(payload)).rstrip("\n")


def html_matrix(payload: dict) -> str:
    """The verdicts and the matrix as a self-contained HTML page: status and seconds per cell, the result lines,
    the differences."""
    return templating.render("multibackend.verify", "verify.html.j2", _context(payload))
