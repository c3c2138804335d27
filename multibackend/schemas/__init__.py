"""The file contracts, declared as JSON Schemas: a run's results file, `parity.json`, `bench.json`, `verify.json`.

Whatever validates renders; whatever does not is named, with the field, and skipped by its reader.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from multibackend.runtime.errors import ResultsError

KINDS = ("results", "parity", "bench", "verify")


@functools.cache
def schema(kind: str) -> dict:
    """The JSON Schema of one kind of file (see `KINDS`)."""
    return json.loads(resources.files(__package__).joinpath(f"{kind}.schema.json").read_text())


def validate(kind: str, payload: Any) -> Any:
    """Checks `payload` against the schema of `kind`.

    Args:
        kind: One of `KINDS`.
        payload: The decoded JSON.

    Returns:
        The payload, unchanged.

    Raises:
        ResultsError: naming the first field that does not fit and why.
    """
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema(kind))
    error = jsonschema.exceptions.best_match(validator.iter_errors(payload))
    if error is not None:
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        raise ResultsError(f"field {field.lstrip('.') or '(top level)'}: {_short(error.message)}")
    return payload


def _short(message: str, limit: int = 160) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."
