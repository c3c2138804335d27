"""The results-file contract: one JSON file per (example, backend, device) run.

Every other command (report, parity, bench, evolve) reads or writes through
here. Files are written atomically, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from multibackend import schemas
from multibackend.runtime.errors import OutputError, ResultsError

SCHEMA_VERSION = 1

# Declared in `schemas/results.schema.json`; named here for the fields every results file has.
REQUIRED_FIELDS = tuple(schemas.schema("results")["required"])


def results_path(out_dir: str | os.PathLike, example: str, backend: str, device: str, trainer: str = "fit") -> Path:
    """`OUT/<example>-<backend>-<device>.json` for Keras `fit`, `...-<device>-loop.json` for the fast path.

    The loop's runs have their own name so that they never replace the `fit`
    results that the comparison is about.
    """
    suffix = "" if trainer == "fit" else f"-{trainer}"
    return Path(out_dir) / f"{example}-{backend}-{device}{suffix}.json"


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Writes JSON to `path` through a temporary file and an atomic rename.

    Args:
        path: Destination; its folder is created if needed.
        payload: JSON-serialisable data.

    Returns:
        The destination path.

    Raises:
        OutputError: when it cannot be written (the previous file, if any, is kept).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(payload, stream, indent=2, sort_keys=False)
            stream.write("\n")
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); a results file is readable as any the user writes.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def validate_results(payload: Any, *, example: str | None = None) -> dict:
    """Checks a loaded results payload against the contract (`schemas/results.schema.json`).

    Args:
        payload: The decoded JSON.
        example: If given, the example the file must be about.

    Returns:
        The payload, unchanged.

    Raises:
        ResultsError: naming what is wrong.
    """
    if not isinstance(payload, dict):
        raise ResultsError("field (top level): not a JSON object")
    version = payload.get("schema_version")
    if not isinstance(version, int):
        raise ResultsError(f"field schema_version: {version!r} is not an integer")
    if version > SCHEMA_VERSION:
        raise ResultsError(f"field schema_version: {version} is newer than this program's {SCHEMA_VERSION}")
    schemas.validate("results", payload)
    if example is not None and payload["example"] != example:
        raise ResultsError(f"is about example {payload['example']!r}, not {example!r}")
    return payload


def read_results(path: str | os.PathLike, *, example: str | None = None) -> dict:
    """Loads and validates one results file; raises `ResultsError` naming the file."""
    path = Path(path)
    try:
        payload = json.loads(path.read_text())
        return validate_results(payload, example=example)
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path}: unreadable ({error})") from None
    except ResultsError as error:
        raise ResultsError(f"{path}: {error}") from None
