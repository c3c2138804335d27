"""Running a child process: its own session, a wall-clock limit, bounded output, and only its own processes ended.

Every command that starts another Python process (one backend per process) goes
through `run_child`, so a timeout, an error or Ctrl-C in the parent ends the
child and everything it started, and a child that prints without end costs
neither memory nor disk: its output is read from pipes as it comes, and only
the last `TAIL_BYTES` of each stream are kept. A child's processes are found by
what the child gave them: its session (it starts one of its own) and a marker
in its environment (`CHILD_MARKER`, a token new for every child), which its
descendants inherit also when they start a session of their own. When the child
ends, every process that carries either is killed, again until none is left (a
descendant that forks in a loop). Children run side by side from several
threads never touch each other's processes. On Linux this process is also a
child subreaper, so that orphans killed here are reaped here.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from multibackend.runtime.signals import raise_if_ended

# What is kept of each stream for messages and parsing: the end, where errors and results are.
TAIL_BYTES = 64 * 1024
# How long the readers of a child's pipes may take, together, to see them close once its processes are gone.
READER_GRACE_SECONDS = 2.0
# How long the processes a child left behind are looked for and killed, again and again.
CLEANUP_SECONDS = 5.0
# The variable that marks a child's processes, whatever session they are in.
CHILD_MARKER = "MULTIBACKEND_CHILD"

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


@dataclass(frozen=True)
class _Process:
    """What /proc says of a process: its parent, group, session, whether it is a zombie, and its environment."""

    pid: int
    parent: int
    group: int
    session: int
    zombie: bool
    environ: bytes


def _process(pid: int) -> _Process | None:
    """A process as /proc shows it (None when it is gone or hidden)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        state, parent, group, session = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        environ = b""  # a zombie's environment is gone: it is known by its session
    return _Process(pid, parent, group, session, state == "Z", environ)


def owned_processes(sessions: set[int], marker: str) -> list[_Process]:
    """The processes in `sessions`, or whose environment carries `CHILD_MARKER=marker`; each one found by its marker
    adds its session to `sessions` (a descendant that started a session of its own, its descendants with it)."""
    tag = f"{CHILD_MARKER}={marker}".encode()
    found = []
    # The newest first: a process that forks and exits in a loop lives for moments, and only its newest pid is alive.
    for pid in sorted((int(name) for name in os.listdir("/proc") if name.isdigit()), reverse=True):
        process = _process(pid)
        if process is None or process.pid == os.getpid():
            continue
        if process.session in sessions or tag in process.environ.split(b"\0"):
            sessions.add(process.session)
            found.append(process)
    return found


def end_owned(session: int, marker: str, within: float = CLEANUP_SECONDS) -> None:
    """Kills every process of a child (see `owned_processes`), and the whole process group of each (a kill to a group
    also reaches a child forked at that moment: a descendant that forks and exits in a loop ends), until none is
    left or `within` seconds pass; reaps the zombies that were re-parented to this subreaper."""
    sessions, own_group = {session}, os.getpgrp()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = owned_processes(sessions, marker)
        alive = [process for process in found if not process.zombie]
        for group in {process.group for process in alive} - {own_group}:
            _signal(os.killpg, group)
        for process in alive:
            _signal(os.kill, process.pid)
        ours = [process.pid for process in found if process.parent == os.getpid()]
        for pid in ours:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if not alive and not ours:
            return
        time.sleep(0.01)


def _signal(kill, target: int) -> None:
    try:
        kill(target, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


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

    def text(self, deadline: float) -> str:
        """What was kept, once the pipe closed (or `deadline`, a `time.monotonic` time, passed), as text."""
        self._thread.join(max(0.0, deadline - time.monotonic()))
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
        env: The child's environment (default: this process's); `CHILD_MARKER` is added to it.
        cwd: The child's working folder.

    Returns:
        Its `ChildResult`.
    """
    _become_subreaper()
    marker = uuid.uuid4().hex
    env = {**(os.environ if env is None else env), CHILD_MARKER: marker}
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
        end_owned(process.pid, marker)  # and those that left its group: its session or its marker
    raise_if_ended()  # a signal whose raise was dropped while the child ran: not one more child
    seconds = time.perf_counter() - started
    deadline = time.monotonic() + READER_GRACE_SECONDS
    stdout, stderr = out.text(deadline), err.text(deadline)
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
