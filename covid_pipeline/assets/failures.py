"""Failures worded for the person running the pipeline: what went wrong, where, what was kept, what to do.

Bad input, unreachable sources and faults of the machine (a full disk, a read-only or missing folder, a
missing permission, a database server that cannot start) are not bugs and do not go away by themselves:
the run fails with the message alone (no traceback as the headline) and is not retried. A lost database
connection is worth a retry (RetryPolicy on the asset).
"""

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from dagster import Failure

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.resources.embedded_postgres import EmbeddedServerError, default_home
from covid_pipeline.resources.object_store import StoreError
from covid_pipeline.resources.sources import DownloadError
from covid_pipeline.resources.warehouse import DatabaseLocation


class RawSourceMissing(RuntimeError):
    """The raw store does not hold a source yet: raw_csv_s3 has not been materialized."""


@contextmanager
def failures_for_people(kept: str, database: DatabaseLocation | None = None, **metadata) -> Iterator[None]:
    """Turn the errors a user can act on into a Dagster Failure; `kept` says what was left intact, `database`
    where the warehouse lives (named when its disk is full)."""
    log_start = _server_log_size(database)  # what the server logs from here on is this step's
    try:
        yield
    except (SourceFormatError, DownloadError, RawSourceMissing, StoreError, EmbeddedServerError) as exc:
        raise Failure(description=f"{exc}\n\n{kept}", metadata=metadata, allow_retries=False) from None
    except OSError as exc:
        fault = environment_fault(exc)
        if fault is None:  # a dropped connection or the like: worth a retry
            raise
        raise Failure(description=f"{fault}\n\n{kept}", metadata=metadata, allow_retries=False) from exc
    except psycopg.errors.DiskFull as exc:
        raise Failure(
            description=f"{database_disk_full(exc, database)}\n\n{kept}",
            metadata=metadata,
            allow_retries=False,
        ) from exc
    except psycopg.OperationalError as exc:
        if (
            database
            and database.data_dir
            and (panic := _disk_full_in_server_log(database.data_dir, log_start))
        ):
            raise Failure(
                description=f"{database_disk_full(panic, database)} The server stopped; it recovers by itself "
                f"once there is space again.\n\n{kept}",
                metadata=metadata,
                allow_retries=False,
            ) from exc
        raise Failure(
            description=f"The database connection failed or was lost ({_first_line(exc)}).\n\n{kept} "
            "The step is retried; if it keeps failing, check that the database is up and COVID_DATABASE_URL.",
            metadata=metadata,
        ) from exc
    except psycopg.Error as exc:
        # The same data would fail the same way again: no retry.
        raise Failure(
            description=f"The database refused the step ({type(exc).__name__}: {_first_line(exc)}).\n\n{kept}",
            metadata=metadata,
            allow_retries=False,
        ) from exc


def behind_cases(table: str) -> str:
    """What a failed step built from covid.cases leaves: its table from the previous load, out of step."""
    return (
        f"{table} was left as it was, built from the previous load, while covid.cases may already hold the "
        "new one (cleaned_cases ran earlier in this run): the two are out of step until this step succeeds. "
        "Fix the cause and re-run this step and the ones after it (e.g. dagster asset materialize "
        "--select 'cleaned_cases+') to bring them back in step."
    )


# --- faults of the machine ------------------------------------------------------------------------------

# errno → what it means for the path, and what to do. Other OSErrors (a reset connection, a timeout) are not
# the machine's settings and keep their retry.
ENVIRONMENT_ERRNOS = {
    errno.ENOSPC: ("the disk holding {path} is full{free}", "free space there, or point {setting} elsewhere"),
    errno.EDQUOT: (
        "the disk quota for {path} is used up{free}",
        "free space there, or point {setting} elsewhere",
    ),
    errno.EROFS: ("{path} is on a read-only file system", "point {setting} at a writable folder"),
    errno.EACCES: (
        "no permission to use {path} (the pipeline runs as {user})",
        "give that user access, or point {setting} at a folder it may write",
    ),
    errno.EPERM: (
        "the operation on {path} is not permitted (the pipeline runs as {user})",
        "give that user access, or point {setting} at a folder it may write",
    ),
    errno.ENOENT: ("{path} does not exist", "create it, or point {setting} at a folder that exists"),
    errno.ENOTDIR: (
        "{path}: part of this path is a file, not a folder",
        "point {setting} at a folder (not at a file)",
    ),
    errno.EISDIR: ("{path} is a folder where a file was expected", "check {setting}"),
    errno.ENAMETOOLONG: (
        "{path} is too long a path for the file system",
        "point {setting} at a shorter path",
    ),
}
ERRNO_OF_CLASS = {
    FileNotFoundError: errno.ENOENT,
    PermissionError: errno.EACCES,
    NotADirectoryError: errno.ENOTDIR,
}


def environment_fault(exc: OSError) -> str | None:
    """One line for an OSError that is a fault of the machine the pipeline runs on (a full disk, a read-only,
    missing or forbidden folder), naming the path and the setting it comes from; None for any other OSError.

    Every asset that runs inside failures_for_people gets this wording, without a retry (the same fault
    would fail the same way again).
    """
    code = exc.errno or ERRNO_OF_CLASS.get(type(exc))
    if code not in ENVIRONMENT_ERRNOS:
        return None
    if exc.errno is None and exc.filename is None:
        return str(exc)  # raised by our own code, already in a person's words
    what, todo = ENVIRONMENT_ERRNOS[code]
    path = exc.filename2 if code == errno.ENOENT and exc.filename2 else exc.filename
    if path is None and code in (errno.ENOSPC, errno.EDQUOT):
        # A write to an open file carries no name: the full one of the pipeline's folders, or (the file already
        # gone, its space given back) each of them with its free space.
        full = [folder for folder in _folders().values() if _free_bytes(folder) < 1 << 20]
        if not full:
            folders = ", ".join(
                f"{name}={folder}{_free_phrase(folder)}" for name, folder in _folders().items()
            )
            return (
                f"A disk filled up while the step wrote a file ({exc.strerror}). The pipeline's folders: "
                f"{folders}. Free space on the one that filled up, or point its setting at a larger disk."
            )
        path = full[0]
    setting, value = _setting_of(Path(path) if path else None)
    fields = {
        "path": path or "a file the step was writing",
        "free": _free_phrase(path) if code in (errno.ENOSPC, errno.EDQUOT) else "",
        "setting": setting,
        "user": _user(),
    }
    said = what.format(**fields)
    place = f" ({setting}={value})" if value else ""
    return f"{said[0].upper()}{said[1:]}{place}: {todo.format(**fields)}. ({exc.strerror or exc})"


def _folders() -> dict[str, str]:
    """The folders the pipeline writes, by the setting that chooses each (most specific first)."""
    folders = {
        "COVID_RAW_STORE": os.environ.get("COVID_RAW_STORE") or str(default_home() / "raw"),
        "COVID_REPORTS_STORE": os.environ.get("COVID_REPORTS_STORE") or str(default_home() / "reports"),
        "DAGSTER_HOME": os.environ.get("DAGSTER_HOME") or "",
        "COVID_HOME": str(default_home()),
        "TMPDIR": tempfile.gettempdir(),
    }
    return {name: folder for name, folder in folders.items() if folder and "://" not in folder}


def _setting_of(path: Path | None) -> tuple[str, str]:
    """The setting whose folder holds `path` (the most specific one), and its value when it is set."""
    if path is not None:
        resolved = _resolved(path)
        for name, folder in sorted(_folders().items(), key=lambda item: -len(str(_resolved(Path(item[1]))))):
            if resolved == _resolved(Path(folder)) or _resolved(Path(folder)) in resolved.parents:
                return name, folder
    return "COVID_HOME or TMPDIR", ""


def _resolved(path: Path) -> Path:
    return Path(os.path.abspath(path.expanduser()))


def _free_bytes(path) -> int:
    """Free bytes on the file system holding `path` (its nearest existing folder); unknown: a large number."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return 1 << 62


def _free_phrase(path) -> str:
    if path is None:
        return ""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return ""
    return f" ({_size(usage.free)} free of {_size(usage.total)})"


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1024 or unit == "GB":
            return f"{count:,.0f} {unit}" if unit == "bytes" else f"{count:,.1f} {unit}"
        count /= 1024
    return f"{count:,.1f} TB"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return "the current user"


# --- the database's disk --------------------------------------------------------------------------------


def database_disk_full(exc: Exception | str, database: DatabaseLocation | None) -> str:
    """One line for a database server whose disk is full, naming where its data lives and what to do."""
    detail = exc if isinstance(exc, str) else _first_line(exc)
    if database is None:
        where, todo = "the database server", "free space on its disk (or give it more storage)"
    elif database.data_dir is not None:
        where = f"{database.description}{_free_phrase(database.data_dir)}"
        todo = "free space on that disk, or move COVID_HOME to a larger one"
    else:
        where = database.description
        todo = "give the server more storage (on RDS, raise its allocated storage)"
    return (
        f"The database's disk is full: {where} ({detail}). Nothing of this step was kept and it is not retried: "
        f"{todo}, then run again."
    )


def _server_log_size(database: DatabaseLocation | None) -> int:
    if database is None or database.data_dir is None:
        return 0
    try:
        return (database.data_dir / "log").stat().st_size
    except OSError:
        return 0


def _disk_full_in_server_log(data_dir: Path, since: int) -> str | None:
    """The PANIC or FATAL line the server logged since byte `since` of its log (the embedded server logs to
    <data_dir>/log) when it says the disk is full: a lost connection a full disk caused (a WAL write that
    failed crashes the server), which a retry cannot help."""
    try:
        with open(Path(data_dir) / "log", "rb") as handle:
            handle.seek(since)
            lines = handle.read(1 << 20).decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        if (" PANIC: " in line or " FATAL: " in line) and "No space left on device" in line:
            return line.split(": ", 1)[-1].strip()
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
