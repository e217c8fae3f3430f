"""First-time set-up of the RDS master: databases, logins and what each login may do. Safe to run again.

Runs as the one-off ECS task `<env>-init-database` (`deploy/deploy.sh init-db`), the only task
that holds the master secret, connected through libpq's own variables (PGHOST, PGUSER,
PGPASSWORD, PGDATABASE, PGSSLMODE). One login per role, each with its own Secrets Manager secret
(its password arrives as the variable named in LOGINS):

- `dagster`: owner of database `dagster` (Dagster's runs, events, schedules), nothing else;
- `covid_pipeline`: owner of schemas `covid` and `reporting` in database `covid` (the warehouse), and
  may create temporary tables there (the marts group the cases once into one);
- `metabase`: owner of database `metabase` (Metabase's application database), nothing else;
- `metabase_reader`: CONNECT on `covid` and SELECT on the relations in `reporting`, including
  the ones the pipeline creates later (default privileges); used on the read replica, which
  receives roles and grants by replication.

Passwords are set again on every run: rotating a login's password is "new value in its secret,
run this task, restart the services that use it" (deploy/deploy.sh rotate). Only their SCRAM
verifiers reach the server, computed here: no password is ever sent, nor logged with
`log_statement = ddl` (which RDS exports to CloudWatch).

The master user is what RDS makes it: `LOGIN CREATEROLE CREATEDB`, never a superuser. So nothing
here mentions SUPERUSER, REPLICATION or BYPASSRLS (PostgreSQL refuses a non-superuser even
NOSUPERUSER), and the master makes itself a member of each login it creates: PostgreSQL 16 gives
the creator of a role ADMIN OPTION on it but neither SET (needed to hand the login a database, a
schema or a table) nor INHERIT (needed to act as their owner afterwards: ALTER ... OWNER, REVOKE,
ALTER DEFAULT PRIVILEGES), https://www.postgresql.org/docs/16/sql-createrole.html.
"""

import os
from pathlib import Path

import psycopg
from psycopg import sql

# login -> environment variable holding its password (init.yaml, InitDatabaseTaskDefinition)
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


def scram_verifier(conn: psycopg.Connection, login: str, password: str) -> str:
    """`password`'s SCRAM-SHA-256 verifier, computed by libpq here; the server stores it as it is."""
    return conn.pgconn.encrypt_password(password.encode(), login.encode(), b"scram-sha-256").decode()


def ensure_login(conn: psycopg.Connection, name: str, password: str) -> None:
    role = sql.Identifier(name)
    verifier = sql.Literal(scram_verifier(conn, name, password))
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        # The attributes a CREATEROLE CREATEDB master may set (a login creates no role or database).
        conn.execute(
            sql.SQL("ALTER ROLE {} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD {}").format(role, verifier)
        )
    else:
        conn.execute(sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(role, verifier))
    # SET and INHERIT on the login, besides the ADMIN OPTION its creation gave (see the docstring).
    can_set, inherits = conn.execute(
        "SELECT pg_has_role(CURRENT_USER, %s, 'SET'), pg_has_role(CURRENT_USER, %s, 'USAGE')", (name, name)
    ).fetchone()
    if not (can_set and inherits):
        conn.execute(sql.SQL("GRANT {} TO CURRENT_USER WITH INHERIT TRUE, SET TRUE").format(role))


def refuse_extra_rights(conn: psycopg.Connection) -> None:
    """Each login holds only what this task grants: no attribute a master cannot take away, no role."""
    extra = conn.execute(
        """SELECT r.rolname, concat_ws(', ', CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
                  CASE WHEN r.rolreplication THEN 'REPLICATION' END, CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END,
                  (SELECT 'member of ' || string_agg(g.rolname, ', ') FROM pg_auth_members m
                     JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid))
             FROM pg_roles r WHERE r.rolname = ANY(%s)""",
        (list(LOGINS),),
    ).fetchall()
    wrong = [f"{login} ({rights})" for login, rights in extra if rights]
    if wrong:
        raise SystemExit(
            f"init_database: {'; '.join(wrong)}: more than this task grants, and not for the master user to "
            "take away; a superuser must (on RDS nobody can: drop the login and run this task again)"
        )


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
    refuse_extra_rights(conn)
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
    # CREATE on the database before it sees that the schema exists; its marts use a temporary table
    # (covid_pipeline/assets/sql/case_groups.sql), which REVOKE ALL ... FROM PUBLIC took away.
    conn.execute("GRANT CREATE, TEMPORARY ON DATABASE covid TO covid_pipeline")
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
