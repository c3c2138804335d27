"""Running a child process: its own process group, a wall-clock limit, bounded output.

Every command that starts another Python process (one backend per process) goes
through `run_child`, so a timeout, an error or Ctrl-C in the parent ends the
whole group, grandchildren included, and a child that prints without end costs
disk in a temporary file, not memory.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

# What is kept of each stream for messages and parsing: the end, where errors and results are.
TAIL_BYTES = 64 * 1024


@dataclass(frozen=True)
class ChildResult:
    """How a child process ended.

    Attributes:
        returncode: Its exit status (None when it was killed at the time limit).
        timed_out: Whether the time limit ended it.
        seconds: Wall-clock seconds it ran.
        stdout: The last `TAIL_BYTES` of its standard output.
        stderr: The last `TAIL_BYTES` of its standard error.
    """

    returncode: int | None
    timed_out: bool
    seconds: float
    stdout: str
    stderr: str


def run_child(command: list[str], *, timeout: float, env: dict | None = None, cwd: str | None = None) -> ChildResult:
    """Runs `command` in a new process group and waits at most `timeout` seconds.

    The group is killed when the limit passes, and on any exception here
    (KeyboardInterrupt included, which is then re-raised).

    Args:
        command: The program and its arguments.
        timeout: Wall-clock limit in seconds.
        env: The child's environment (default: this process's).
        cwd: The child's working folder.

    Returns:
        Its `ChildResult`.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                   start_new_session=True)  # fmt: skip
        timed_out = False
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        except BaseException:
            _kill_group(process)
            raise
        finally:
            _kill_group(process)  # grandchildren that outlive the child go too
        return ChildResult(None if timed_out else process.returncode, timed_out, time.perf_counter() - started,
                           _tail(out), _tail(err))  # fmt: skip


def start_child(command: list[str]) -> subprocess.Popen:
    """Starts `command` in a new process group, to run beside this process; end it with `end_child`.

    Args:
        command: The program and its arguments.

    Returns:
        The running process.
    """
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)


def end_child(process: subprocess.Popen) -> None:
    """Kills `process`'s whole group (a no-op for a group that has already ended) and reaps it."""
    _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


def _tail(stream) -> str:
    stream.seek(0, os.SEEK_END)
    stream.seek(max(0, stream.tell() - TAIL_BYTES))
    return stream.read().decode(errors="replace")
