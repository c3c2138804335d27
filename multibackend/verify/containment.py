"""A verified run in namespaces of its own: its processes end with it, and installed software cannot change.

Where Linux lets this process make them (root, or unprivileged user namespaces),
each run starts under `unshare`:
- a PID namespace: the run's first process is its init; when it ends, or when
  verify kills the run, the kernel ends every process the run started (a
  background `sleep &`, a daemon in a session of its own, a descendant that forks
  in a loop), and no other run's processes are in it to be touched;
- a mount namespace in which the Python installation (this environment's prefix
  and site-packages, the base interpreter's), `/usr` and dpkg's database are
  mounted read-only: an install by any spelling (pip, `pip --isolated`, uv, conda
  into this prefix, apt-get) fails with "Read-only file system".
Where it cannot, runs go on without them (`contained` in verify.json says which), and the
process cleanup of `runtime.children` (the run's session and environment marker)
and pip's guard (`environment.py`) still apply.
"""

from __future__ import annotations

import functools
import shutil
import site
import sys
import tempfile
from pathlib import Path

from multibackend.runtime.children import run_child

# Mounts each path given before `--` read-only over itself, then runs the command after it (and waits for it: the
# first process of a PID namespace ignores signals it has no handler for, the command should not be that process).
MOUNT_SCRIPT = 'while [ "$1" != "--" ]; do mount --bind -o ro "$1" "$1" || exit 97; shift; done; shift; "$@"; exit $?'
UNSHARE_OPTIONS = ("--pid", "--fork", "--kill-child", "--mount-proc", "--propagation", "private")


def protected_paths() -> list[str]:
    """The folders an install would change: this Python's prefixes and site-packages, `/usr`, dpkg's database."""
    candidates = [sys.prefix, sys.exec_prefix, sys.base_prefix, *site.getsitepackages(), "/usr", "/var/lib/dpkg"]
    folders = sorted({Path(path).resolve() for path in candidates if Path(path).is_dir()})
    outermost = [folder for folder in folders if not any(other in folder.parents for other in folders)]
    return [str(folder) for folder in outermost]


def contained(command: list[str], read_only: list[str] | None = None) -> list[str]:
    """`command` run in a PID and mount namespace of its own with `read_only` folders (default: `protected_paths`).

    Returns:
        The command to start instead, or `command` itself where namespaces cannot be made here.
    """
    prefix = _unshare_prefix()
    if prefix is None:
        return command
    paths = protected_paths() if read_only is None else read_only
    return [*prefix, "sh", "-c", MOUNT_SCRIPT, "sh", *paths, "--", *command]


def available() -> bool:
    """Whether runs are contained here (namespaces can be made and folders mounted read-only in them)."""
    return _unshare_prefix() is not None


@functools.cache
def _unshare_prefix() -> tuple[str, ...] | None:
    """The `unshare` command line that works here (as root, or in a user namespace), or None."""
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return None
    with tempfile.TemporaryDirectory(prefix="multibackend-contain-") as folder:
        probe = Path(folder) / "probe"
        probe.mkdir()
        for extra in ((), ("--user", "--map-root-user")):
            prefix = (unshare, *extra, *UNSHARE_OPTIONS)
            test = [
                *prefix,
                "sh",
                "-c",
                MOUNT_SCRIPT,
                "sh",
                str(probe),
                "--",
                "sh",
                "-c",
                'touch "$0/file" 2>/dev/null && exit 1 || exit 0',
                str(probe),
            ]
            try:
                finished = run_child(test, timeout=20)
            except OSError:
                continue
            if finished.returncode == 0 and not (probe / "file").exists():
                return prefix
    return None


def describe() -> str:
    """One line for the run's header: how runs are contained here."""
    if available():
        return "namespaces (processes end with the run; installed software read-only)"
    return "none available here (process cleanup by session and marker; pip refuses installs)"
