"""The warehouse's URL and schema, without Dagster: shared by WarehouseResource and the commands that need
only a connection (`covid-pipeline db-url`, `psql`), which then start in a fraction of a second."""

import os
from functools import cache
from importlib.resources import files
from pathlib import Path

import psycopg
from psycopg import sql

from covid_pipeline.resources.embedded_postgres import default_data_dir, embedded_server_url


@cache
def read_sql(package: str, name: str) -> str:
    """The text of a .sql file shipped beside the code in `package`."""
    return files(package).joinpath(name).read_text(encoding="utf-8")


def resolve_url(
    database_url: str, database_password: str, embedded_data_path: Path, keep_running: bool = False
) -> str:
    """The URL to connect to (the password added; the embedded server started when no URL is given, and
    left running after this process if `keep_running`), with the schema migrated."""
    if database_url and database_password:
        url = psycopg.conninfo.make_conninfo(database_url, password=database_password)
    else:
        url = database_url or embedded_server_url(embedded_data_path, keep_running=keep_running)
    migrate(url)
    return url


def url_from_environment(keep_running: bool = False) -> str:
    """The warehouse that runs use, as definitions.py configures it: COVID_DATABASE_URL (with
    COVID_DATABASE_PASSWORD), else the embedded server under COVID_HOME."""
    return resolve_url(
        os.environ.get("COVID_DATABASE_URL", ""),
        os.environ.get("COVID_DATABASE_PASSWORD", ""),
        default_data_dir(),
        keep_running,
    )


def migrate(url: str) -> None:
    """Create the schema objects every asset relies on (idempotent; serialised by an advisory lock)."""
    with psycopg.connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('covid_pipeline.migrate'))")
        conn.execute(read_sql("covid_pipeline.resources", "warehouse.sql"))
        conn.execute(
            sql.SQL(read_sql("covid_pipeline.assets.sql", "department_crosswalk_table.sql")).format(
                table=sql.Identifier("covid", "department_crosswalk")
            )
        )
