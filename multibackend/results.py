"""The results-file contract: one JSON file per (example, backend, device) run, read and written as a `RunResult`.

Every other command (report, parity, bench, evolve) reads or writes through
here. Files are written atomically, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from multibackend import schemas
from multibackend.runtime.errors import OutputError, ResultsError

SCHEMA_VERSION = 1
# The largest JSON file any command reads: its own files are kilobytes; a larger one is not one of them.
MAX_JSON_BYTES = 64 << 20

# Declared in `schemas/results.schema.json`; named here for the fields every results file has.
REQUIRED_FIELDS = tuple(schemas.schema("results")["required"])


class JsonRecord:
    """A file that a command writes, typed: a dataclass whose fields are the file's, and its JSON Schema.

    Subclasses name their schema in `SCHEMA`; a test checks that the dataclass and the schema name the same
    fields and the same required ones. A field marked `field(metadata={"file": False})` is not in the file.
    """

    SCHEMA: ClassVar[str]

    # field(metadata=...) keys: "file": False, not in the file; "null": True, written as null when None.

    @classmethod
    def file_fields(cls) -> tuple[str, ...]:
        """The names of the fields that the file holds."""
        return tuple(item.name for item in fields(cls) if item.metadata.get("file", True))

    def to_json(self) -> dict:
        """The file's contents: its fields, the optional ones (default None) only when set."""
        return {
            item.name: getattr(self, item.name)
            for item in fields(self)
            if item.metadata.get("file", True)
            and (getattr(self, item.name) is not None or item.default is not None or item.metadata.get("null"))
        }

    @classmethod
    def from_json(cls, payload: Any, **extra):
        """The record a file holds, once it is checked against its schema.

        Raises:
            ResultsError: naming what is wrong.
        """
        schemas.validate(cls.SCHEMA, payload)
        return cls._from_checked(payload, **extra)

    @classmethod
    def _from_checked(cls, payload: dict, **extra):
        return cls(**{name: payload[name] for name in cls.file_fields() if name in payload}, **extra)


@dataclass(frozen=True)
class RunResult(JsonRecord):
    """One run of one course example on one backend and device: what its results file holds.

    The fields are the file's (`schemas/results.schema.json`); the optional ones default to None, or to what
    files older than them meant.

    Attributes:
        path: Where the file was written or read from (not in the file).
    """

    SCHEMA: ClassVar[str] = "results"

    schema_version: int
    example: str
    backend: str
    backend_version: str
    keras_version: str
    python_version: str
    device: str
    device_name: str
    params: int
    expected_params: int
    epochs: int
    batch_size: int
    seed: int
    history: dict[str, list[float]]
    test: dict[str, float]
    epoch_seconds: list[float]
    median_epoch_seconds: float
    first_epoch_seconds: float
    gates: list[dict]
    passed: bool
    created: str
    trainer: str = "fit"
    metric: str = "accuracy"
    weight_device: str | None = None
    tf32: bool | None = None
    host: str | None = None
    data_source: str | None = None
    steps_per_epoch: int | None = None
    train_seconds: float | None = None
    steps_per_second: float | None = None
    peak_rss_bytes: int | None = None
    command: str | None = None
    misclassified: list[list[int]] | None = None
    final_weights: list | None = None
    solve_rate: dict | None = None
    path: str = field(default="", compare=False, metadata={"file": False})

    @property
    def test_metric(self) -> float | None:
        """The test value of the example's metric (accuracy, binary accuracy)."""
        return self.test.get(self.metric)

    @classmethod
    def from_json(cls, payload: Any, *, example: str | None = None, path: str = "") -> RunResult:
        """The run a results file holds, once it is checked against the contract (see `validate_results`).

        Raises:
            ResultsError: naming what is wrong.
        """
        validate_results(payload, example=example)
        return cls._from_checked(payload, path=path)


@dataclass(frozen=True)
class ParityResult(JsonRecord):
    """`parity.json`: every check of every pair of participants (`schemas/parity.schema.json`).

    Attributes:
        rows: One per check and pair: `{check, pair, difference, tolerance, passed}` (difference None: NaN).
        max_difference: The largest difference of each check (None: NaN).
        train_samples: The MNIST training images trained on, the first ones (None: an older file, all 60,000).
    """

    SCHEMA: ClassVar[str] = "parity"

    participants: list[str]
    rows: list[dict]
    max_difference: dict[str, float | None]
    failed_checks: list[str]
    passed: bool
    created: str
    seeds: int | None = None
    mnist_epochs: int | None = None
    train_samples: int | None = None
    mnist_epoch_loss: dict[str, list[float]] | None = None


@dataclass(frozen=True)
class BenchResult(JsonRecord):
    """`bench.json`: seconds per epoch and ratios to the native loop, per backend and trainer
    (`schemas/bench.schema.json`).

    Attributes:
        rows: One per backend and trainer (see the schema for their fields).
    """

    SCHEMA: ClassVar[str] = "bench"

    machine: str
    repeats: int
    rows: list[dict]
    created: str
    estimated_peak_gflops: float | None = None
    flops_per_epoch: int | None = None
    timed_epochs_per_repeat: int | None = None
    warmup_epochs: int | None = None
    command: str | None = None


def results_path(out_dir: str | os.PathLike, example: str, backend: str, device: str, trainer: str = "fit") -> Path:
    """`OUT/<example>-<backend>-<device>.json` for Keras `fit`, `...-<device>-loop.json` for the fast path.

    The loop's runs have their own name so that they never replace the `fit`
    results that the comparison is about.
    """
    suffix = "" if trainer == "fit" else f"-{trainer}"
    return Path(out_dir) / f"{example}-{backend}-{device}{suffix}.json"


def strict_json(payload: Any) -> Any:
    """`payload` with every NaN and infinity as None: strict JSON, which every parser reads (bare NaN is not JSON)."""
    if isinstance(payload, float) and not math.isfinite(payload):
        return None
    if isinstance(payload, dict):
        return {key: strict_json(value) for key, value in payload.items()}
    if isinstance(payload, (list, tuple)):
        return [strict_json(value) for value in payload]
    return payload


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Writes strict JSON to `path` through a temporary file and an atomic rename.

    Args:
        path: Destination; its folder is created if needed.
        payload: JSON-serialisable data (NaN and infinities are written as null, see `strict_json`).

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
            json.dump(strict_json(payload), stream, indent=2, sort_keys=False, allow_nan=False)
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


def read_json_file(path: str | os.PathLike) -> Any:
    """Reads a JSON file that a command wrote: a regular file (never a FIFO or device, which would block), of at
    most `MAX_JSON_BYTES`, not nested deeper than the parser's recursion limit.

    Raises:
        ResultsError: naming the file and what is wrong with it.
    """
    path = Path(path)
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ResultsError(f"{path}: not a regular file")
        if info.st_size > MAX_JSON_BYTES:
            raise ResultsError(f"{path}: larger than {MAX_JSON_BYTES >> 20} MiB: not a file this program wrote")
        with open(path, "rb") as stream:
            return json.loads(stream.read(MAX_JSON_BYTES + 1), parse_constant=_not_json)
    except RecursionError:
        raise ResultsError(f"{path}: nested too deeply to be a file this program wrote") from None
    except (OSError, ValueError) as error:
        raise ResultsError(f"{path}: unreadable ({error})") from None


def _not_json(name: str):
    """`json.loads` reads NaN and Infinity unless told otherwise: no file this program writes holds them."""
    raise ValueError(f"{name} is not a JSON number")


def read_results(path: str | os.PathLike, *, example: str | None = None) -> RunResult:
    """Loads and validates one results file; raises `ResultsError` naming the file."""
    payload = read_json_file(path)
    try:
        return RunResult.from_json(payload, example=example, path=str(path))
    except ResultsError as error:
        raise ResultsError(f"{path}: {error}") from None
