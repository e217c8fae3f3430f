"""Metabase's container in the rehearsal, where its image (Java, from Docker Hub) cannot run.

Fargate (fargate.py) starts this process in its place, with exactly what ECS gives Metabase's container
(its environment and secrets), and it does what Metabase's first start does with them, refusing what
Metabase would refuse:

- `MB_ENCRYPTION_SECRET_KEY` of fewer than 16 characters stops it ("MB_ENCRYPTION_SECRET_KEY must be at
  least 16 characters", src/metabase/util/encryption.clj in github.com/metabase/metabase);
- its application database is reached as `MB_DB_CONNECTION_URI` says, as login `MB_DB_USER` with
  `MB_DB_PASS`: its host and port, TLS with the URI's `sslmode` and `sslrootcert` (the RDS bundle, a file of
  the task volume `rds-ca` at the path the URI names: REHEARSAL_MOUNTS says where that volume is here);
  pgJDBC's own TLS is not libpq's, but the certificate, the name and the file are the same. It then
  creates Liquibase's journal table there, as its migrations do first, so the login must own the database;
- then it serves Metabase's API, not yet set up (the fake Metabase of the test suite,
  covid_pipeline_tests/helpers/metabase.py), on the task's port 3000 (REHEARSAL_PORTS) until stopped.

    python -m deploy.rehearsal.metabase
"""

import json
import os
import signal
import sys
import threading
from urllib.parse import parse_qs, urlsplit

import psycopg

ENCRYPTION_KEY_LENGTH = 16


class Refused(Exception):
    pass


def local_path(path: str, mounts: dict[str, str]) -> str:
    """Where a file of the container's filesystem is here: under one of its mounts, else nowhere."""
    for container_path in sorted(mounts, key=len, reverse=True):
        if path == container_path or path.startswith(container_path.rstrip("/") + "/"):
            return mounts[container_path] + path[len(container_path) :]
    return "/nonexistent" + path


def application_database(environ: dict[str, str], mounts: dict[str, str]) -> str:
    """Connects to Metabase's database as Metabase would and creates its first table; what it reached."""
    uri = urlsplit(environ["MB_DB_CONNECTION_URI"])
    if uri.scheme not in ("postgres", "postgresql") or environ.get("MB_DB_TYPE") != "postgres":
        raise Refused(
            f"not a PostgreSQL application database: MB_DB_TYPE {environ.get('MB_DB_TYPE')}, {uri.scheme}"
        )
    options = {key: values[-1] for key, values in parse_qs(uri.query).items()}
    sslmode = options.get("sslmode", "require" if options.get("ssl") == "true" else "prefer")
    root = options.get("sslrootcert")
    try:
        with psycopg.connect(
            host=uri.hostname,
            port=uri.port or 5432,
            dbname=uri.path.lstrip("/"),
            user=environ["MB_DB_USER"],
            password=environ["MB_DB_PASS"],
            sslmode=sslmode,
            sslrootcert=local_path(root, mounts) if root else "/nonexistent/root.crt",
            connect_timeout=10,
            autocommit=True,
        ) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS databasechangelog (id varchar(255) NOT NULL)")
            return f"{conn.info.user}@{uri.hostname}/{conn.info.dbname} (sslmode {sslmode}, {root})"
    except psycopg.Error as error:
        raise Refused(f"cannot reach its application database {uri.hostname}: {error}".strip()) from None


def main() -> int:
    from covid_pipeline_tests.helpers.metabase import FakeMetabase

    environ = dict(os.environ)
    mounts = json.loads(environ.get("REHEARSAL_MOUNTS", "{}"))
    ports = {int(port): local for port, local in json.loads(environ["REHEARSAL_PORTS"]).items()}
    try:
        if len(environ.get("MB_ENCRYPTION_SECRET_KEY", "")) < ENCRYPTION_KEY_LENGTH:
            raise Refused(f"MB_ENCRYPTION_SECRET_KEY must be at least {ENCRYPTION_KEY_LENGTH} characters")
        reached = application_database(environ, mounts)
    except (Refused, KeyError) as error:
        print(f"metabase: {error}", file=sys.stderr, flush=True)
        return 1
    print(f"metabase: application database {reached}", flush=True)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())  # ECS's stop
    with FakeMetabase(set_up=False, port=ports[3000]) as metabase:
        print(f"metabase: serving {metabase.url}, not set up yet", flush=True)
        stopped.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
