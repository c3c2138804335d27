"""Work in a backend's own process: a typed request in, a typed reply out.

Keras fixes its backend at import, so work under a backend other than this
process's (or under any backend, from a process that stays framework-free) runs
in a child process. `run_job` is the one way to do that: a `JobRequest` names
the backend, the device and a function by its import path, with a dataclass of
its arguments; the child (`python -m multibackend.runtime.job`) fixes the
backend before Keras is imported, rebuilds the arguments, calls the function
and writes a `JobReply` with its JSON return value or its one-line error. The
child runs through `run_child`: its own process group, a wall-clock limit,
bounded output, and Ctrl-C or SIGTERM here ends it. `start_job` starts one to
run beside this process (the workers of one search).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
import tempfile
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multibackend.runtime.children import ChildResult, run_child, start_child
from multibackend.runtime.errors import ChildCrashed, UsageError, last_line

# The child's exit statuses, as the command line's: 0 done, 1 the function raised, 2 a usage error.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# The device a job's process was fixed to (`cpu` or `gpu`, `auto` resolved there): set in the job's process.
DEVICE_ENV = "MULTIBACKEND_JOB_DEVICE"


@dataclass(frozen=True)
class JobRequest:
    """What to run in a backend's own process.

    Attributes:
        backend: The Keras backend the child fixes before anything imports Keras.
        function: `package.module:function`, called with `arguments` (or with nothing when it is None).
        arguments: A dataclass instance whose fields are JSON values (or None).
        device: `cpu` or `gpu`, for the frameworks' device settings; `auto`: the GPU where the backend finds one
            (resolved in the job's process).
        import_keras: Whether the child imports Keras before the call; False for a function that
            must run first (one that installs a sandbox).
        hide_other_frameworks: Whether the child makes the other backends' frameworks look uninstalled, as in a
            venv of one backend (`runtime.backend.hide_other_frameworks`); False where code that is not ours runs.
        cores: The CPU cores the child runs on (`runtime.cores.pin_to_cores`, before any framework starts its
            threads); empty: those this process may use.
    """

    backend: str
    function: str
    arguments: Any = None
    device: str = "cpu"
    import_keras: bool = True
    hide_other_frameworks: bool = True
    cores: tuple[int, ...] = ()

    def to_json(self) -> dict:
        """The request as JSON values: the arguments with their dataclass's import path."""
        arguments_type = None
        arguments = None
        if self.arguments is not None:
            kind = type(self.arguments)
            arguments_type = f"{kind.__module__}:{kind.__qualname__}"
            arguments = dataclasses.asdict(self.arguments)
        return {
            "backend": self.backend,
            "device": self.device,
            "function": self.function,
            "arguments_type": arguments_type,
            "arguments": arguments,
            "import_keras": self.import_keras,
            "hide_other_frameworks": self.hide_other_frameworks,
            "cores": list(self.cores),
        }

    @classmethod
    def from_json(cls, data: dict) -> JobRequest:
        """The request that `to_json` wrote, its arguments rebuilt as their dataclass."""
        arguments = None
        if data.get("arguments_type"):
            arguments = from_fields(resolve(data["arguments_type"]), data["arguments"])
        return cls(
            backend=data["backend"],
            function=data["function"],
            arguments=arguments,
            device=data.get("device", "cpu"),
            import_keras=data.get("import_keras", True),
            hide_other_frameworks=data.get("hide_other_frameworks", True),
            cores=tuple(int(core) for core in data.get("cores", ())),
        )


class JobFailed(Exception):
    """Raised by a job's function that failed but has an account of the work to return all the same.

    The child replies with `ok` false, this one-line message as the error and `value` as the value (exit status 1).
    """

    def __init__(self, message: str, value: Any):
        super().__init__(message)
        self.value = value


@dataclass(frozen=True)
class JobReply:
    """What the child wrote: the function's return value, or why it failed.

    Attributes:
        ok: Whether the function returned.
        value: Its return value as JSON (a dataclass is written as its fields); for a `JobFailed`, its value.
        error: `ErrorType: message`, one line, when it raised.
        usage_error: Whether that error is a usage error (a bad input: exit 2 up the chain).
    """

    ok: bool
    value: Any = None
    error: str = ""
    usage_error: bool = False


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended: its reply (None when the child wrote none) and its process.

    Attributes:
        reply: The child's `JobReply`, or None when it was killed, timed out or crashed before replying.
        process: How the child process ended (exit status, seconds, the end of its output).
    """

    reply: JobReply | None
    process: ChildResult

    @property
    def ok(self) -> bool:
        """Whether the function returned (and the child exited 0)."""
        return self.reply is not None and self.reply.ok and self.process.returncode == EXIT_OK

    @property
    def value(self) -> Any:
        """The function's return value (None unless `ok`)."""
        return self.reply.value if self.ok else None

    def result(self, what: str) -> Any:
        """The function's return value; raises what the command line reports for a job that did not return.

        Args:
            what: The job, as a message names it ("parity worker torch-cpu").

        Raises:
            UsageError: when the function refused its input (exit 2 up the chain).
            ChildCrashed: when it raised, crashed, was killed or timed out (exit 3).
        """
        if self.ok:
            return self.reply.value
        if self.reply is not None and self.reply.usage_error:
            raise UsageError(f"{what}: {self.reply.error}")
        verb = "" if self.process.timed_out else "crashed: "
        raise ChildCrashed(f"{what} {verb}{self.failure()}")

    def failure(self) -> str:
        """Why the job did not return, in one line ("" when it did)."""
        if self.ok:
            return ""
        if self.process.timed_out:
            return f"timed out after {self.process.seconds:.0f} s"
        if self.reply is not None and not self.reply.ok:
            return self.reply.error
        return f"exit {self.process.returncode}: {last_line(self.process.stderr, 'no error output')}"


def resolve(path: str):
    """The object that `package.module:name` (dotted names allowed after the colon) names."""
    module_name, _, attribute = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def from_fields(kind: type, fields: dict):
    """An instance of the dataclass `kind` from the JSON fields that `dataclasses.asdict` wrote.

    Tuples come back as tuples and nested dataclasses as themselves (JSON has lists and objects only), also
    where the field may be None.
    """
    hints = typing.get_type_hints(kind)
    values = {}
    for field in dataclasses.fields(kind):
        if field.name not in fields:
            continue
        value, hint = fields[field.name], _not_none(hints.get(field.name))
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = from_fields(hint, value)
        elif isinstance(value, list) and typing.get_origin(hint) is tuple:
            value = tuple(value)
        values[field.name] = value
    return kind(**values)


def _not_none(hint):
    """`X` for a hint `X | None` (or `Optional[X]`); the hint itself otherwise."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return others[0] if len(others) == 1 else hint
    return hint


def command_for(request: JobRequest, reply_path: Path | None = None) -> list[str]:
    """The command line that runs `request` in a fresh Python process."""
    command = [sys.executable, "-m", "multibackend.runtime.job", json.dumps(request.to_json())]
    return command + (["--reply", str(reply_path)] if reply_path is not None else [])


def run_job(
    request: JobRequest,
    *,
    timeout: float,
    env: dict | None = None,
    cwd: str | None = None,
    wrap: Callable[[list[str]], list[str]] | None = None,
) -> JobOutcome:
    """Runs `request` in a fresh process with its backend and waits at most `timeout` seconds.

    Args:
        request: What to run, under which backend and device.
        timeout: Wall-clock limit in seconds; the child's whole process group is killed after it.
        env: The child's environment (default: this process's).
        cwd: The child's working folder.
        wrap: Turns the child's command line into the one to start (one that starts it in namespaces of its own).

    Returns:
        The `JobOutcome`: the reply (None when the child wrote none) and how the process ended.
    """
    with tempfile.TemporaryDirectory(prefix="multibackend-job-") as folder:
        reply_path = Path(folder) / "reply.json"
        command = command_for(request, reply_path)
        finished = run_child(wrap(command) if wrap else command, timeout=timeout, env=env, cwd=cwd)
        reply = read_reply(reply_path)
    return JobOutcome(reply, finished)


def read_reply(path: Path) -> JobReply | None:
    """The reply a child wrote at `path`, or None when it wrote none (or not a whole one)."""
    try:
        data = json.loads(path.read_text())
        return JobReply(**{key: data[key] for key in ("ok", "value", "error", "usage_error")})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_job(request: JobRequest) -> subprocess.Popen:
    """Starts `request` in its own process group to run beside this process; end it with `children.end_child`.

    Its exit status says how it went (`EXIT_OK`, `EXIT_FAILED`, `EXIT_USAGE`); it writes no reply.
    """
    return start_child(command_for(request))
