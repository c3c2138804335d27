"""The file contracts, declared as JSON Schemas: a run's results file, `parity.json`, `bench.json`, `verify.json`,
`evolve-<study>.json`.

Whatever validates renders; whatever does not is named, with the field, and skipped by its reader.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from multibackend.runtime.errors import ResultsError

KINDS = ("results", "parity", "bench", "verify", "evolve")


@functools.cache
def schema(kind: str) -> dict:
    """The JSON Schema of one kind of file (see `KINDS`).

    A backend's name is `{"$ref": "#/$defs/backend"}` in the files: one of the folders of `multibackend/backends`,
    filled in here, so that a new backend is its folder alone.
    """
    from multibackend.backends import NAMES

    loaded = json.loads(resources.files(__package__).joinpath(f"{kind}.schema.json").read_text())
    loaded.setdefault("$defs", {})["backend"] = {"enum": list(NAMES)}
    return loaded


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

    try:
        error = jsonschema.exceptions.best_match(validator(kind).iter_errors(payload))
    except RecursionError:
        raise ResultsError("field (top level): nested too deeply") from None
    if error is not None:
        field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        raise ResultsError(f"field {field.lstrip('.') or '(top level)'}: {_short(error.message)}")
    return payload


@functools.cache
def validator(kind: str):
    """The compiled validator of one kind of file (compiling it for each file cost 7.7 ms), with `date-time` checked."""
    import jsonschema

    checker = jsonschema.FormatChecker(formats=())
    checker.checks("date-time", raises=ValueError)(_date_time)
    return jsonschema.Draft202012Validator(schema(kind), format_checker=checker)


def _date_time(value) -> bool:
    """Whether a string is an ISO 8601 date and time with its UTC offset, as the commands write `created`."""
    import datetime as dt

    if not isinstance(value, str):
        return True  # the type is the schema's to check
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


def _short(message: str, limit: int = 160) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."
