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
    if keep_running:
        (server.pgdata / KEPT).touch()
    ensure_database(server.get_uri(), database)
    return server.get_uri(database)


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
                if attempt == attempts:
                    raise
    if cleanup_mode == "stop" and server not in _GUARDED:
        # atexit runs the handlers registered last first: this one before pgserver's own.
        atexit.register(_spare_if_in_use, server)
        _GUARDED.append(server)
    return server


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
