"""First-time set-up of the RDS master: databases, logins and what each login may do. Safe to run again.

Runs as the one-off ECS task `<env>-init-database` (`deploy/deploy.sh init-db`), the only task
that holds the master secret, connected through libpq's own variables (PGHOST, PGUSER,
PGPASSWORD, PGDATABASE, PGSSLMODE). One login per role, each with its own Secrets Manager secret
(its password arrives as the variable named in LOGINS):

- `dagster`: owner of database `dagster` (Dagster's runs, events, schedules), nothing else;
- `covid_pipeline`: owner of schemas `covid` and `reporting` in database `covid` (the warehouse);
- `metabase`: owner of database `metabase` (Metabase's application database), nothing else;
- `metabase_reader`: CONNECT on `covid` and SELECT on the relations in `reporting`, including
  the ones the pipeline creates later (default privileges); used on the read replica, which
  receives roles and grants by replication.

Passwords are set again on every run: rotating a login's password is "new value in its secret,
run this task, restart the services that use it" (deploy/deploy.sh rotate).
"""

import os
from pathlib import Path

import psycopg
from psycopg import sql

# login -> environment variable holding its password (services.yaml, InitDatabaseTaskDefinition)
LOGINS = {
    "dagster": "DAGSTER_PASSWORD",
    "covid_pipeline": "PIPELINE_PASSWORD",
    "metabase": "METABASE_PASSWORD",
    "metabase_reader": "METABASE_READER_PASSWORD",
}
# database -> owner (None: the master user keeps it; the pipeline owns schemas in it instead)
DATABASES = {"dagster": "dagster", "covid": None, "metabase": "metabase"}
# database -> logins that may connect, besides its owner
CONNECT = {"covid": ("covid_pipeline", "metabase_reader")}
# Objects a login must own when an earlier deployment left them to the master user.
OWNED_SCHEMAS = {
    "dagster": {"public": "dagster"},
    "covid": {"covid": "covid_pipeline", "reporting": "covid_pipeline"},
}
COVID_SQL = Path(__file__).with_name("init_database.sql")
RELATION_KINDS = {
    "r": "TABLE",
    "p": "TABLE",
    "v": "VIEW",
    "m": "MATERIALIZED VIEW",
    "S": "SEQUENCE",
    "f": "FOREIGN TABLE",
}


def ensure_database(conn: psycopg.Connection, name: str) -> None:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def ensure_login(conn: psycopg.Connection, name: str, password: str) -> None:
    role = sql.Identifier(name)
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("CREATE ROLE {}").format(role))
    conn.execute(
        sql.SQL(
            "ALTER ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD {}"
        ).format(role, sql.Literal(password))
    )
    # On RDS the master user is no superuser: it may hand objects to a role it is a member of.
    if not conn.execute("SELECT pg_has_role(CURRENT_USER, %s, 'SET')", (name,)).fetchone()[0]:
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))


def hand_over(conn: psycopg.Connection, schemas: dict[str, str]) -> None:
    """Give every relation in each schema to the schema's login (sequences owned by a column follow their table)."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname, c.relkind
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ANY(%s) AND c.relkind = ANY(%s)
              AND pg_get_userbyid(c.relowner) <> ALL(%s)
              AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                              AND d.objid = c.oid AND d.deptype IN ('a', 'i'))""",
        (list(schemas), list(RELATION_KINDS), list(set(schemas.values()))),
    ).fetchall()
    for schema, name, kind in rows:
        conn.execute(
            sql.SQL("ALTER {} {} OWNER TO {}").format(
                sql.SQL(RELATION_KINDS[kind]), sql.Identifier(schema, name), sql.Identifier(schemas[schema])
            )
        )


def initialise(conn: psycopg.Connection, passwords: dict[str, str]) -> None:
    """Cluster-wide part (`conn` on any database, autocommit), then each database's own part."""
    for name in DATABASES:
        ensure_database(conn, name)
    for login in LOGINS:
        ensure_login(conn, login, passwords[login])
    for name, owner in DATABASES.items():
        database = sql.Identifier(name)
        if owner:
            conn.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(database, sql.Identifier(owner)))
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(database))
        for login in CONNECT.get(name, ()):
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, sql.Identifier(login))
            )
    # The pipeline's migrations run CREATE SCHEMA IF NOT EXISTS, which PostgreSQL checks against
    # CREATE on the database before it sees that the schema exists.
    conn.execute("GRANT CREATE ON DATABASE covid TO covid_pipeline")
    for name, schemas in OWNED_SCHEMAS.items():
        with psycopg.connect(conn.info.dsn, password=conn.info.password, dbname=name, autocommit=True) as db:
            if name == "covid":
                db.execute(COVID_SQL.read_text(encoding="utf-8"))
            hand_over(db, schemas)


def main() -> None:
    missing = [variable for variable in LOGINS.values() if not os.environ.get(variable)]
    if missing:
        raise SystemExit(f"init_database: {', '.join(missing)} not set")
    passwords = {login: os.environ[variable] for login, variable in LOGINS.items()}
    # CREATE DATABASE cannot run inside a transaction block.
    with psycopg.connect("", autocommit=True) as conn:
        initialise(conn, passwords)
    print(f"init_database: databases {', '.join(DATABASES)} and logins {', '.join(LOGINS)} ready")


if __name__ == "__main__":
    main()
