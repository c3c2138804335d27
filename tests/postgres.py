"""A throwaway PostgreSQL server for the tests: Debian's `initdb` and `pg_ctl`, a free port on 127.0.0.1.

PostgreSQL refuses to run as root; as root, the server runs as the `postgres` user
that Debian's package creates, in a folder of its own under the temporary folder.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_program(name: str) -> str | None:
    """`initdb`, `pg_ctl` or `createdb` on PATH, or in Debian's versioned folder."""
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def postgres_server(database: str = "optuna") -> Iterator[str]:
    """Starts a PostgreSQL server with one empty database; yields its SQLAlchemy URL (psycopg2 driver).

    Raises:
        RuntimeError: when PostgreSQL's programs are not installed (Debian: `apt-get install postgresql`).
    """
    programs = {name: server_program(name) for name in ("initdb", "pg_ctl", "createdb")}
    missing = [name for name, path in programs.items() if path is None]
    if missing:
        raise RuntimeError(f"PostgreSQL is not installed here (no {', '.join(missing)}): apt-get install postgresql")
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="multibackend-postgres-"))
    if as_user:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", _free_port()
    try:
        subprocess.run(
            [
                *as_user,
                programs["initdb"],
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *as_user,
                programs["pg_ctl"],
                "-D",
                str(data),
                "-l",
                str(folder / "server.log"),
                "-w",
                "-o",
                f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        try:
            subprocess.run(
                [*as_user, programs["createdb"], "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", database],
                check=True,
                capture_output=True,
            )
            yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/{database}"
        finally:
            subprocess.run(
                [*as_user, programs["pg_ctl"], "-D", str(data), "-m", "immediate", "stop"], capture_output=True
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
