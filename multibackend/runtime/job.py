"""The child side of `runtime.jobs`: runs one `JobRequest` in this fresh process.

    python -m multibackend.runtime.job REQUEST_JSON [--reply PATH]

It fixes the request's backend and device before Keras is imported (and imports Keras unless the
request says the function does it), calls the function with the request's arguments and writes a
`JobReply` to PATH. Exit status: 0 the function returned, 1 it raised (its traceback on stderr,
its one-line error in the reply; a `JobFailed` also its value), 2 a usage error, 128 + N after an ending signal N (130 after Ctrl-C).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path

from multibackend.runtime.backend import hide_other_frameworks, import_keras, select_backend
from multibackend.runtime.cores import pin_to_cores
from multibackend.runtime.devices import resolve_device
from multibackend.runtime.errors import UsageError, one_line
from multibackend.runtime.jobs import (
    DEVICE_ENV,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    JobFailed,
    JobReply,
    JobRequest,
    resolve,
)
from multibackend.runtime.signals import Terminated, ending, ending_signals_raise, leave


def run_request(request: JobRequest):
    """Pins the process to the request's cores and fixes the backend, then calls the request's function; returns its
    value as JSON values."""
    pin_to_cores(request.cores)
    device = resolve_device(request.backend, "auto") if request.device == "auto" else request.device
    select_backend(request.backend, device)
    os.environ[DEVICE_ENV] = device
    if request.hide_other_frameworks:
        hide_other_frameworks(request.backend)
    if request.import_keras:
        import_keras()
    function = resolve(request.function)
    return as_json(function() if request.arguments is None else function(request.arguments))


def as_json(value):
    """A function's value as JSON values (a dataclass as its fields)."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def write_reply(path: Path | None, reply: JobReply) -> None:
    """Writes the reply whole or not at all (a reader never sees half of one)."""
    if path is None:
        return
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(dataclasses.asdict(reply)))
    os.replace(partial, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m multibackend.runtime.job")
    parser.add_argument("request", help="the JobRequest as JSON")
    parser.add_argument("--reply", type=Path, help="where to write the JobReply")
    args = parser.parse_args(argv)
    name = "job"
    try:
        with ending_signals_raise():
            try:
                request = JobRequest.from_json(json.loads(args.request))
            except (ValueError, KeyError, TypeError) as error:
                raise UsageError(f"not a job request ({type(error).__name__}: {error})") from None
            name = request.function.rpartition(":")[2]
            value = run_request(request)
            write_reply(args.reply, JobReply(ok=True, value=value))
            return EXIT_OK
    except UsageError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        write_reply(args.reply, JobReply(ok=False, error=str(error), usage_error=True))
        return EXIT_USAGE
    except JobFailed as failed:
        print(f"{name}: {failed}", file=sys.stderr)
        write_reply(args.reply, JobReply(ok=False, value=as_json(failed.value), error=str(failed)))
        return EXIT_FAILED
    except (KeyboardInterrupt, Terminated) as ended:
        message, code = ending(ended)
        print(f"{name}: {message}", file=sys.stderr)
        return code
    except Exception as error:  # noqa: BLE001 - the function's own errors: the traceback on stderr, one line back
        traceback.print_exc()
        write_reply(args.reply, JobReply(ok=False, error=one_line(error)))
        return EXIT_FAILED


if __name__ == "__main__":
    leave(main())
