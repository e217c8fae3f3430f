"""A real PostgreSQL server for when no database URL is configured (the `pgserver` wheel ships one)."""

import atexit
import logging
import os
import subprocess
import warnings
from contextlib import suppress
from pathlib import Path

import psycopg
from psycopg import errors, sql

# pgserver warns on machines without XDG_RUNTIME_DIR; its fallback is fine.
logging.getLogger("pgserver").setLevel(logging.WARNING)

EMBEDDED_DATABASE = "covid"
# In the server's data folder while the server is kept running for other programs (`covid-pipeline
# db-url`), until `covid-pipeline stop`.
KEPT = "covid-pipeline.kept"


class EmbeddedServerError(RuntimeError):
    """The embedded server did not start: says where its data is and why (the last error in its log)."""


def default_home() -> Path:
    """Where local state lives (embedded database, raw files, reports): $COVID_HOME or ~/.covid-pipeline."""
    return Path(os.environ.get("COVID_HOME") or Path.home() / ".covid-pipeline")


def default_data_dir() -> Path:
    """The embedded server's data folder when none is configured."""
    return default_home() / "pgdata"


def embedded_server_url(
    data_dir: str | os.PathLike, database: str = EMBEDDED_DATABASE, keep_running: bool = False
) -> str:
    """Start (or reuse) the embedded server kept in `data_dir` and return a URL to `database` on it.

    The server stops when the last process that asked for it exits, unless other clients are connected
    to it then, or `keep_running` asked for it to stay up (for other programs to connect to the URL)
    until `stop_server`. Its data stays in `data_dir`.
    """
    server = start_server(data_dir)
    if not _minimal_wal_set(server.get_uri()) and not keep_running and _alone_on(server):
        # Just started for this process alone: restart it now rather than at its next start.
        server.cleanup()  # stops it, unless another process took it meanwhile (then it keeps running)
        _forget_handle(_pgserver(), server.pgdata)  # the next handle registers this process afresh
        server = start_server(data_dir)
    if keep_running:
        (server.pgdata / KEPT).touch()
    ensure_database(server.get_uri(), database)
    return server.get_uri(database)


def _minimal_wal_set(server_url: str) -> bool:
    """Whether the server runs with wal_level = minimal; if not, sets it for the server's next start.

    The embedded server has no replica or archive to feed, and with minimal WAL the rows a load writes into
    the table it created skip the WAL: a full disk then fails the load with an error its transaction rolls
    back, files and all, instead of a failed WAL write that crashes the server and leaves the half-written
    table's files behind, unknown to any catalog. (It also spares the disk writing every row twice.)
    """
    with psycopg.connect(server_url, autocommit=True) as conn:
        if conn.execute("SHOW wal_level").fetchone() == ("minimal",):
            return True
        try:
            conn.execute("ALTER SYSTEM SET wal_level = 'minimal'")
            conn.execute("ALTER SYSTEM SET max_wal_senders = 0")
        except psycopg.Error:
            return True  # not ours to change (a read-only or foreign data folder): run as it is
        return False


def _alone_on(server) -> bool:
    """No other process holds the server, and no other client is connected to it. (pgserver checks again, under
    its lock, before it stops a server: a process that arrives meanwhile keeps it running.)"""
    try:
        holders = server.global_process_id_list.get()
    except ValueError:  # the list is being rewritten by another process: not alone
        return False
    if holders != [os.getpid()]:
        return False
    return _other_clients(server.get_uri()) == 0


def start_server(data_dir: str | os.PathLike, cleanup_mode: str | None = "stop", attempts: int = 3):
    """pgserver's server for `data_dir`, started if needed.

    pgserver gives `pg_ctl start` 10 seconds; on a busy machine the server is up a little later, and
    asking again finds it running.
    """
    pgserver = _pgserver()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = Path(data_dir).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, attempts + 1):
            try:
                server = pgserver.get_server(path, cleanup_mode=cleanup_mode)
                break
            except subprocess.TimeoutExpired:
                _forget_handle(pgserver, path)
                if attempt == attempts:
                    raise
            except subprocess.CalledProcessError as exc:
                _forget_handle(pgserver, path)
                raise EmbeddedServerError(
                    f"The embedded PostgreSQL in {path} did not start: {_last_error(path / 'log')} "
                    f"(its log: {path / 'log'})."
                ) from exc
            except BaseException:
                _forget_handle(pgserver, path)
                raise
    if cleanup_mode == "stop" and server not in _GUARDED:
        # atexit runs the handlers registered last first: this one before pgserver's own.
        atexit.register(_spare_if_in_use, server)
        _GUARDED.append(server)
    return server


def _forget_handle(pgserver, path: Path) -> None:
    """Drop pgserver's cached handle for a data folder. It keeps one per folder from the moment it starts
    creating it: after a failed start that handle is half made (no server info), and asking again would return
    it and fail with a bare AssertionError. Forgotten, the next attempt (a retry, the next run) starts afresh."""
    handle = pgserver.PostgresServer._instances.pop(path, None)
    if handle is not None:
        atexit.unregister(handle._cleanup)


def _last_error(log: Path) -> str:
    """The server's last FATAL or PANIC line (why it stopped or could not start)."""
    try:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()[-200:]
    except OSError:
        return "see its log"
    errors = [line for line in lines if " FATAL: " in line or " PANIC: " in line]
    return errors[-1].split(": ", 1)[-1].strip() if errors else "see its log"


_GUARDED: list = []


def _spare_if_in_use(server) -> None:
    """pgserver stops the server when the last process it knows of exits: it does not know of other
    programs' connections (a notebook on `db-url`'s URL). Keep the server up when it was kept for them, or
    when other clients are connected now."""
    if (server.pgdata / KEPT).exists() or _other_clients(server.get_uri()):
        server.cleanup_mode = None


def _other_clients(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            ).fetchone()[0]
    except psycopg.Error:
        return 0  # not answering: nothing to spare


def stop_server(data_dir: str | os.PathLike) -> str:
    """Stop the embedded server in `data_dir` (kept running by db-url), unless a process of the pipeline
    still uses it: that process stops it when it ends. Returns what was done, for a person."""
    path = Path(data_dir).expanduser().resolve()
    if not (path / "PG_VERSION").exists():
        return f"no embedded server in {path}"
    (path / KEPT).unlink(missing_ok=True)
    _pgserver()
    import psutil
    from pgserver.utils import DiskList, PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(path)
    if info is None or not info.is_running():
        return f"the embedded server in {path} is not running"
    # pgserver's list of the processes using the server (it stops the server when the last one ends)
    handles = DiskList(path / ".handle_pids.json")
    users = [pid for pid in handles.get() if pid != os.getpid() and psutil.pid_exists(pid)]
    handles.put(users)  # processes that were killed never took themselves off
    if users:
        return f"the embedded server in {path} is in use by pid {', '.join(map(str, users))}: it stops when they end"
    start_server(path).cleanup()
    return f"stopped the embedded server in {path} (its data stays)"


def client_binary(name: str) -> Path:
    """A PostgreSQL client program shipped with pgserver (psql: no client to install)."""
    _pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


def _pgserver():
    """pgserver, imported without its warning on machines without XDG_RUNTIME_DIR (its fallback is fine)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

    return pgserver


def ensure_database(server_url: str, database: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            with suppress(errors.DuplicateDatabase, errors.UniqueViolation):  # another process was first
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
