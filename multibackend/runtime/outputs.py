"""A command's output files: checked before any work, written as one set.

`check_output_files` refuses, before a command starts its work, an output path
that could not be written at its end (a folder or a FIFO in its place, a name
longer than the file system allows, two outputs on one path, an output that is
one of the command's inputs). `write_together` writes every file of a set to a
temporary name beside its place and renames them into place only once all are
written: a full disk or an error keeps the previous set whole.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from multibackend.runtime.errors import OutputError, UsageError


def name_error(path: Path) -> str | None:
    """Why the file system would refuse `path`'s name (a part longer than its limit), or None."""
    limit = 255
    try:
        existing = next(parent for parent in [path.absolute(), *path.absolute().parents] if parent.exists())
        limit = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, StopIteration):
        pass
    too_long = next((part for part in path.parts if len(os.fsencode(part)) > limit), None)
    return f"a name longer than {limit} bytes ({too_long[:24]}...)" if too_long else None


def check_output_files(paths: list[Path], inputs: list[Path] = (), role: str = "output") -> None:
    """Refuses, in one line, outputs that could not be written after the work.

    Args:
        paths: Every file the command will write.
        inputs: Files the command reads (none may be overwritten).
        role: How the message names an output.

    Raises:
        UsageError: naming the path and what is wrong with it.
    """
    seen: dict[Path, Path] = {}
    read = set()
    for given in inputs:
        problem = name_error(Path(given))
        if problem is None:
            read.add(Path(given).resolve())
    for path in paths:
        problem = name_error(path)
        if problem:
            raise UsageError(f"{role} {path}: {problem}")
        resolved = path.resolve()
        if resolved in seen:
            raise UsageError(f"{role} {path} would overwrite another output, {seen[resolved]}: name another file")
        if resolved in read:
            raise UsageError(f"{role} {path}: would overwrite an input of this command: name another file")
        seen[resolved] = path
        try:
            mode = os.stat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as error:
            raise UsageError(f"{role} {path}: {error.strerror or error}") from None
        if stat.S_ISDIR(mode):
            raise UsageError(f"{role} {path}: is a folder, not a file")
        if not stat.S_ISREG(mode):
            raise UsageError(f"{role} {path}: is not a regular file (a FIFO or device would block)")


def write_together(files: dict[Path, str | bytes]) -> None:
    """Writes every file of a set, or none: each to a temporary name beside its place, then all renamed into place.

    Raises:
        OutputError: when one cannot be written; the temporary files are removed and the previous files kept.
    """
    written: list[tuple[str, Path]] = []
    try:
        for path, content in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:200]}.", suffix=".tmp", dir=path.parent)
            written.append((temporary, path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(content.encode() if isinstance(content, str) else content)
                stream.flush()
                os.fsync(stream.fileno())
            os.chmod(temporary, 0o666 & ~_umask())
        for temporary, path in written:
            os.replace(temporary, path)
    except OSError as error:
        for temporary, _ in written:
            try:
                os.unlink(temporary)
            except OSError:
                pass
        raise OutputError(f"cannot write {path}: {error.strerror or error}; the previous files are kept") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
