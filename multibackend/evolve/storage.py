"""The study's storage: opening it (SQLite, PostgreSQL, MySQL, a journal file), its URL shown without its password, and
a storage that stops taking writes mid-search turned into one line."""

from __future__ import annotations

import contextlib
import os
import re
import time
import traceback
from pathlib import Path

from multibackend.runtime.errors import UsageError, one_line

_PASSWORD = re.compile(r"(://[^:/@?#]*:)[^/?#]*@")  # to the last @ before the host, as SQLAlchemy reads it


def shown_storage(url: str) -> str:
    """`url` with its password masked (`postgresql+psycopg2://evolve:***@host/db`), for messages, files and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def _masked(text: str, url: str) -> str:
    """`text` (a driver's message) with `url` and its password masked wherever they appear."""
    match = _PASSWORD.search(url)
    text = text.replace(url, shown_storage(url))
    password = match[0][len(match[1]) : -1] if match else ""
    return text.replace(password, "***") if password else text


# Seconds between the tries to open a storage.
OPEN_RETRY_PAUSES = (0.2, 0.5, 1.0, 2.0)


def make_storage(url: str):
    """An Optuna storage for `url`; RDB storages get heartbeats so a killed trial is retried."""
    import warnings

    import optuna

    # Heartbeats and the retry callback are marked experimental; they are what makes resuming safe.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    if url.startswith("journal:///"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = _storage_file(url, Path(url[len("journal:///") - 1 :]))
        try:
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as error:
            raise UsageError(f"--storage {url!r}: cannot open ({error.strerror or error})") from None
    if url.startswith("sqlite:///"):
        _storage_file(url, Path(url[len("sqlite:///") :]))
    # Two processes that open a new database at once both create its tables, and one of them fails ("table ...
    # already exists", a UNIQUE constraint): by the next try the other has made them.
    for pause in OPEN_RETRY_PAUSES:
        try:
            return _rdb_storage(url)
        except Exception:  # noqa: BLE001 - drivers raise many kinds
            time.sleep(pause)
    try:
        return _rdb_storage(url)
    except Exception as error:  # noqa: BLE001
        raise UsageError(_masked(f"--storage {url!r}: cannot open ({str(error).splitlines()[0]})", url)) from None


def _storage_file(url: str, path: Path) -> Path:
    """The file of a SQLite or journal storage, its folder made; one line when it cannot be (a file in the way, a
    folder where the file goes)."""
    if path.is_dir():
        raise UsageError(f"--storage {url!r}: {path} is a folder, not a database file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(
            f"--storage {url!r}: cannot make its folder {path.parent} ({error.strerror or error})"
        ) from None
    return path


class StorageFailed(UsageError):
    """The study's storage stopped taking writes mid-search (a full disk, a read-only folder, a lost server)."""


@contextlib.contextmanager
def storage_writes(url: str):
    """Turns a storage that fails mid-search into one line naming it (exit 2): the trials it holds are kept.

    Optuna reports a failed write as the driver's error, or as "AssertionError: Should not reach." from its own
    storage code; anything else goes on up.
    """
    try:
        yield
    except Exception as error:  # noqa: BLE001 - told apart below
        if not _from_storage(error):
            raise
        message = _masked(one_line(error), url)
        raise StorageFailed(
            f"the study's storage {shown_storage(url)} stopped taking writes ({message}); the trials it holds are "
            "kept: resume the search when it can be written again"
        ) from None


def _from_storage(error: BaseException) -> bool:
    """Whether `error`, or an error it arose from, was raised by a storage: a file system's write, SQLAlchemy or its
    drivers, or Optuna's storage code (a failed write inside Optuna's trial loop surfaces as an error of the loop
    itself, an UnboundLocalError in Optuna 4, with the storage's error as its context)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) or type(error).__module__.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg2"):
            return True
        if type(error).__name__ == "StorageInternalError":
            return True
        frames = traceback.extract_tb(error.__traceback__)
        if frames and "optuna/storages" in frames[-1].filename.replace(os.sep, "/"):
            return True
        error = error.__cause__ or error.__context__
    return False


# Seconds a SQLite write waits for another process's lock before it fails. SQLite's own default, 5 s, was crossed
# on a loaded CI machine while two workers and a reader shared one file, and the search stopped as if its disk had.
SQLITE_LOCK_WAIT_S = 120


def _rdb_storage(url: str):
    import optuna

    engine_kwargs = {"connect_args": {"timeout": SQLITE_LOCK_WAIT_S}} if url.startswith("sqlite:") else {}
    return optuna.storages.RDBStorage(
        url,
        engine_kwargs=engine_kwargs,
        heartbeat_interval=5,
        grace_period=15,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
    )
