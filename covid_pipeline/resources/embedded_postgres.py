"""A real PostgreSQL server for when no database URL is configured (the `pgserver` wheel ships one)."""

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

    The server stops when the last process that asked for it exits (unless `keep_running`, for other
    programs to connect to the URL); its data stays in `data_dir`.
    """
    server = start_server(data_dir, cleanup_mode=None if keep_running else "stop")
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
                return pgserver.get_server(path, cleanup_mode=cleanup_mode)
            except subprocess.TimeoutExpired:
                if attempt == attempts:
                    raise


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
