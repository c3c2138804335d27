"""Running a child process: its own process group, a wall-clock limit, bounded output.

Every command that starts another Python process (one backend per process) goes
through `run_child`, so a timeout, an error or Ctrl-C in the parent ends the
whole group, grandchildren included, and a child that prints without end costs
neither memory nor disk: its output is read from pipes as it comes, and only
the last `TAIL_BYTES` of each stream are kept. A grandchild that leaves the group (a
new session, a daemon) is found too: on Linux this process becomes a child
subreaper, so such orphans are re-parented to it instead of to init, and every
process that a child left behind is ended with it. Children may run side by
side from several threads: each cleans up only what its own child left behind,
and `end_all_children` ends every running one (the main thread calls it when it
is interrupted while worker threads wait on children).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from multibackend.runtime.signals import raise_if_ended

# What is kept of each stream for messages and parsing: the end, where errors and results are.
TAIL_BYTES = 64 * 1024
# How long the readers of a child's pipes may take to see them close once its processes are gone.
READER_GRACE_SECONDS = 5.0

# The process ids of children that `run_child` is waiting on, in any thread.
_running: set[int] = set()
_running_lock = threading.Lock()


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


def _become_subreaper() -> bool:
    """Makes orphaned descendants of this process its children again (Linux `PR_SET_CHILD_SUBREAPER`)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # 36: PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _process_parents() -> dict[int, list[int]]:
    """Each process id's children, from /proc (empty where there is none)."""
    parents: dict[int, list[int]] = {}
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat_file.parent.name))
    return parents


def _below(parents: dict[int, list[int]], root: int) -> set[int]:
    found, frontier = set(), [root]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found.update(children)
        frontier.extend(children)
    return found


def _descendants() -> set[int]:
    """The process ids below this process."""
    return _below(_process_parents(), os.getpid())


def _end_left_behind(before: set[int]) -> None:
    """Kills and reaps the processes below this one that were not there before a child started.

    Children that other threads still wait on, and everything below them, are theirs: left alone.
    """
    with _running_lock:
        parents = _process_parents()
        others = set(_running)
        for pid in _running:
            others |= _below(parents, pid)
        left = _below(parents, os.getpid()) - before - others
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
    for pid in left:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass  # not our child (still below another process): its own parent reaps it


class _Tail:
    """The last `limit` bytes of a pipe, read as they come by a thread of its own: bounded memory, no disk."""

    def __init__(self, pipe, limit: int = TAIL_BYTES):
        self._pipe = pipe
        self._limit = limit
        self._kept = bytearray()
        self.total = 0
        self._thread = threading.Thread(target=self._read, name="child-output", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        descriptor = self._pipe.fileno()
        while True:
            try:
                chunk = os.read(descriptor, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            self.total += len(chunk)
            self._kept += chunk
            if len(self._kept) > 2 * self._limit:
                del self._kept[: -self._limit]

    def text(self) -> str:
        """What was kept, once the pipe closed (or the grace time passed), as text."""
        self._thread.join(READER_GRACE_SECONDS)
        kept = bytes(self._kept[-self._limit :])
        dropped = self.total - len(kept)
        note = f"[{dropped} earlier bytes of output not kept]\n" if dropped > 0 else ""
        return note + kept.decode(errors="replace")


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
    _become_subreaper()
    before = _descendants()
    started = time.perf_counter()
    with _running_lock:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        _running.add(process.pid)
    out, err = _Tail(process.stdout), _Tail(process.stderr)
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:  # on a timeout and on any exception here (Ctrl-C, SIGTERM), which then goes on up
        _kill_group(process)  # grandchildren that outlive the child go too
        with _running_lock:
            _running.discard(process.pid)
        _end_left_behind(before)  # and those that left its group
    raise_if_ended()  # a signal whose raise was dropped while the child ran: not one more child
    seconds = time.perf_counter() - started
    stdout, stderr = out.text(), err.text()
    process.stdout.close()
    process.stderr.close()
    return ChildResult(None if timed_out else process.returncode, timed_out, seconds, stdout, stderr)


def end_all_children() -> None:
    """Kills the process group of every child that `run_child` waits on, in any thread.

    Their threads then see the child end, clean up what it left behind and return.
    """
    with _running_lock:
        running = list(_running)
    for pid in running:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


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
