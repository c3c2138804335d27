"""One verdict per course file across the backends it was verified under, and what no backend ran.

The verdicts, in the order they are decided:

- *portable*: passed on every backend it was verified under;
- *not verified*: no run passed, and the environment stopped every run, or
  some runs, for want of something it lacks (a package: `ModuleNotFoundError`;
  a dataset: a download that failed), named; the file's own code was not
  judged there (the others' failures are named beside it);
- *fails everywhere*: failed on every backend with the same error: a problem of
  the file (NumPy 2's removed `np.Inf`), not of a backend;
- *single-backend by design*: pinned to one backend (`--respect-backend-pins`),
  importing a framework directly (not only as a data pipeline), or training
  only in cells gated to one backend, and passing on that backend;
- *backend-specific*: passes on some backends, fails on others (or fails
  everywhere with different errors).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from multibackend.verify.outputs import normalize

PORTABLE = "portable"
NOT_VERIFIED = "not verified"
FAILS_EVERYWHERE = "fails everywhere"
SINGLE_BACKEND = "single-backend by design"
BACKEND_SPECIFIC = "backend-specific"
VERDICTS = (PORTABLE, NOT_VERIFIED, FAILS_EVERYWHERE, SINGLE_BACKEND, BACKEND_SPECIFIC)
NOT_RUN = "not installed"

# Errors that say the environment stopped the run, not the file's code: what is missing, by the error's words.
PACKAGE_MISSING = re.compile(
    r"ModuleNotFoundError: No module named '([^']+)'|ImportError: .*?[Yy]ou must install `?([A-Za-z][\w.-]*)"
    r"|TBNotInstalledError: (TensorBoard) is not installed"
)
# A download by a shell command that failed before the failing cell (`judge` names it): the data never came.
DOWNLOAD_FAILED = re.compile(r"after a failed shell command in cell \d+: !(?:wget|curl)\b.*?(https?://\S+)")
# A file that the missing data, or a cell that failed for want of it, would have made: Python's own error, Keras's
# `load_model` of a model that an earlier cell would have saved, `image_dataset_from_directory` on an empty folder.
FILE_MISSING = re.compile(
    r"FileNotFoundError|ValueError: File not found: filepath=|ValueError: No images found in directory"
)
DATASET_MISSING = re.compile(
    r"(?:URL fetch failure on (\S+?):?\s|Failed to download\S* (\S+)|dataset missing: (\S+)|"
    r"(Name or service not known|Temporary failure in name resolution|Network is unreachable))"
)


@dataclass(frozen=True)
class Verdict:
    """A file's verdict and the line that explains it."""

    kind: str
    detail: str


def file_verdict(rows: list[dict], imports_framework: str = "") -> Verdict:
    """The verdict of one file from its rows of the matrix (one per backend).

    Args:
        rows: The file's cells of `verify.json` (status, backend, error, ...).
        imports_framework: The backend whose framework the file imports directly (not only as a data pipeline), if
            any (e.g. "tensorflow").

    Returns:
        The `Verdict`.
    """
    verified = [row for row in rows if row["status"] != NOT_RUN]
    passing = [row["backend"] for row in verified if row["status"] == "passed"]
    failing = [row for row in verified if row["status"] != "passed"]
    if not failing:
        return Verdict(PORTABLE, f"passed on {_names(passing)}" if passing else "nothing was verified")
    missing = [_run_stopped_by(row) for row in failing]
    if not passing and all(missing) and all(row["status"] == "failed" for row in failing):
        named = sorted(set(missing))
        return Verdict(
            NOT_VERIFIED,
            f"not verified ({'; '.join(named)}) on {_names(r['backend'] for r in failing)}: the environment stopped "
            "every run before the file's code could be judged",
        )
    if not passing and any(missing):  # some runs stopped by the environment, the others failed on their own
        stopped = [row["backend"] for row, why in zip(failing, missing) if why]
        judged = [row for row, why in zip(failing, missing) if not why]
        return Verdict(
            NOT_VERIFIED,
            f"not verified ({'; '.join(sorted(set(filter(None, missing))))}) on {_names(stopped)}; "
            + _outcome([], judged),
        )
    errors = {normalize(row.get("error", "")) for row in failing}
    if not passing and len(errors) == 1 and all(row["status"] in ("failed", "timed out") for row in failing):
        return Verdict(
            FAILS_EVERYWHERE,
            f"the same error on {_names(r['backend'] for r in failing)}: "
            f"{failing[0]['error']} (a problem of the file or its environment, not of a backend)",
        )
    design = _single_backend_design(verified, imports_framework, passing)
    outcome = _outcome(passing, failing)
    if design:
        return Verdict(SINGLE_BACKEND, f"{design}; {outcome}")
    return Verdict(BACKEND_SPECIFIC, outcome)


def _run_stopped_by(row: dict) -> str:
    """What stopped a run, when only the environment did: its first error names something missing, and every other
    failing cell (`--keep-going`) does too, fails only after an earlier error, or misses a file (the data that the
    missing package or download would have brought: `train/cat.0.jpg` after `kagglehub`, or a model that a cell
    training on that data would have saved); "" otherwise."""
    first = environment_missing(row.get("error", ""))
    others = row.get("failed_cells", [])[1:]
    if first and all(_after_the_environment(cell) for cell in others):
        return first
    return ""


def _after_the_environment(cell: dict) -> bool:
    return bool(
        cell.get("after_earlier_error") or environment_missing(cell["error"]) or FILE_MISSING.match(cell["error"])
    )


def missing_modules(error: str) -> list[str]:
    """The modules an error says cannot be imported, in its order: as Python names them, the first missing part of
    a dotted name (`google.colab` beside protobuf's `google` namespace; `kagglehub` for `import kagglehub.auth`)."""
    # TensorBoard's error names the package: its module's name.
    return [match.group(1) or match.group(2) or match.group(3).lower() for match in PACKAGE_MISSING.finditer(error)]


def environment_missing(error: str) -> str:
    """What a run's error says the environment lacks ("package missing: pydot", "dataset missing: URL"), or ""."""
    modules = missing_modules(error)
    if modules:
        return f"package missing: {modules[0]}"
    download = DOWNLOAD_FAILED.search(error)
    if download:
        return f"dataset missing: {download.group(1)}"
    dataset = DATASET_MISSING.search(error)
    if dataset:
        named = next((group for group in dataset.groups()[:3] if group), "")
        return f"dataset missing: {named}" if named else "dataset missing (no network)"
    return ""


def _single_backend_design(rows: list[dict], imports_framework: str, passing: list[str]) -> str:
    """Why the file is written for one backend, when it passes there ("" otherwise: a file that fails on its own
    backend too is not "by design")."""
    pinned = {row.get("backend_used") for row in rows if row["status"] == "pinned"}
    if pinned:
        return f"pinned to {_names(sorted(pinned))}"
    if imports_framework and imports_framework in passing:
        return f"imports {imports_framework} directly"
    gated_to = {gated["backend"] for row in rows for gated in row.get("code_cells_gated", [])}
    for row in rows:
        trained = set(row.get("trained", []))
        own_gated = {
            gated["cell"]
            for other in rows
            for gated in other.get("code_cells_gated", [])
            if gated["backend"] == row["backend"]
        }
        if trained and trained <= own_gated and len(gated_to) == 1 and row["backend"] in passing:
            return f"trains only in cells gated to {row['backend']}"
    return ""


def _outcome(passing: list[str], failing: list[dict]) -> str:
    failures = "; ".join(
        f"{row['backend']}: {row['status']}" + (f" ({row['error']})" if row.get("error") else "") for row in failing
    )
    return (f"passes on {_names(passing)}; " if passing else "") + f"fails on {failures}"


def _names(backends) -> str:
    return ", ".join(backends)


def reached(row: dict, cell: int) -> bool:
    """Whether a notebook's run (a row of the matrix) ran under its own backend as far as `cell`."""
    if row["status"] in ("passed", "output differs"):
        return True
    if row["status"] in ("failed", "timed out"):
        return row.get("failed_cell") is not None and row["failed_cell"] >= cell
    return False


def cells_run_nowhere(file: str, rows: list[dict], verified: list[str]) -> list[str]:
    """Warnings for a file's backend-gated cells that ran under none of their backends.

    Args:
        file: The file's path as shown.
        rows: The file's rows of the matrix.
        verified: The backends asked for.

    Returns:
        One line per such cell: `file: cell 48: tensorflow only, tensorflow not verified`.
    """
    gated = {gated["cell"]: gated["backend"] for row in rows for gated in row.get("code_cells_gated", [])}
    by_backend = {row["backend"]: row for row in rows}
    nowhere: dict[tuple[str, str], list[int]] = {}
    for cell, names in sorted(gated.items()):
        backends = names.split(",")
        if any(name in by_backend and reached(by_backend[name], cell) for name in backends):
            continue
        reasons = [_why_not(name, by_backend.get(name), verified) for name in backends]
        nowhere.setdefault((" or ".join(backends), "; ".join(reasons)), []).append(cell)
    return [
        f"{file}: cell{'s' if len(cells) > 1 else ''} {', '.join(map(str, cells))}: {names} only, {reasons}: "
        f"{'they' if len(cells) > 1 else 'it'} ran nowhere"
        for (names, reasons), cells in nowhere.items()
    ]


def _why_not(name: str, row: dict | None, verified: list[str]) -> str:
    if name not in verified or row is None:
        return f"{name} not verified"
    if row["status"] == NOT_RUN:
        return f"{name} not installed"
    if row["status"] in ("wrong backend", "pinned"):
        return f"{name}'s run used {row.get('backend_used') or 'another backend'}"
    if row["status"] == "wrong device":
        return f"{name}'s run ran on {row.get('device_used') or 'another device'}"
    return f"{name}'s run {row['status']} before it"
