"""First-time set-up of the RDS master: the databases and the Metabase roles. Safe to run again.

Runs as the one-off ECS task `<env>-init-database` (`deploy/deploy.sh init-db`), connected as the
master user through libpq's own variables (PGHOST, PGUSER, PGPASSWORD, PGDATABASE, PGSSLMODE):

- databases `dagster` (Dagster's storage), `covid` (the warehouse) and `metabase`;
- role `metabase` (LOGIN, password METABASE_PASSWORD), owner of database `metabase`;
- role `metabase_reader` (LOGIN, password METABASE_READER_PASSWORD) with CONNECT on `covid`.
  What it may read there is granted by the pipeline's own migrations; roles and grants reach the
  read replica, where Metabase uses this role, by replication.

Passwords are set again on every run, so rotating a secret is: change it, run this task again.
"""

import os

import psycopg
from psycopg import sql

DATABASES = ("dagster", "covid", "metabase")


def ensure_database(conn: psycopg.Connection, name: str) -> None:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_login_role(conn: psycopg.Connection, name: str, password: str) -> None:
    role = sql.Identifier(name)
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE ROLE {}").format(role))
    conn.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(role, sql.Literal(password)))


def initialise(conn: psycopg.Connection, metabase_password: str, reader_password: str) -> None:
    for name in DATABASES:
        ensure_database(conn, name)
    ensure_login_role(conn, "metabase", metabase_password)
    ensure_login_role(conn, "metabase_reader", reader_password)
    # On RDS the master user is no superuser: it may hand a database to a role it belongs to.
    conn.execute("GRANT metabase TO CURRENT_USER")
    conn.execute("ALTER DATABASE metabase OWNER TO metabase")
    conn.execute("GRANT CONNECT ON DATABASE covid TO metabase_reader")
    conn.execute("REVOKE CONNECT ON DATABASE dagster FROM PUBLIC")
    conn.execute("REVOKE CONNECT ON DATABASE metabase FROM PUBLIC")


def main() -> None:
    missing = [name for name in ("METABASE_PASSWORD", "METABASE_READER_PASSWORD") if not os.environ.get(name)]
    if missing:
        raise SystemExit(f"init_database: {', '.join(missing)} not set")
    # CREATE DATABASE cannot run inside a transaction block.
    with psycopg.connect("", autocommit=True) as conn:
        initialise(conn, os.environ["METABASE_PASSWORD"], os.environ["METABASE_READER_PASSWORD"])
        print(f"init_database: databases {', '.join(DATABASES)} and roles metabase, metabase_reader ready")


if __name__ == "__main__":
    main()
