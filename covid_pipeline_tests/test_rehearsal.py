"""The rehearsal of a fresh account's first deployment (`python -m deploy.rehearse`), and the RDS it
stands up being as strict as RDS.

The rehearsal runs as its own process, as a user runs it: it serves moto and hooks Fargate into it,
which must not touch the moto server the other tests share.
"""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]
STEPS = [
    "deploy.sh infra",
    "RDS master and read replica",
    "deploy.sh ci",
    "first-deploy stops at a failed image build",
    "deploy.sh first-deploy",
    "webserver and daemon on Fargate",
    "the daemon's run on Fargate",
    "raw and report stores on S3",
    "metabase_reader on the replica",
    "deploy.sh rotate dagster",
]


@pytest.mark.slow
def test_a_fresh_accounts_first_deployment_plays_through(tmp_path):
    """Every step, from `deploy.sh infra` to a rotated password the services reconnect with."""
    result = subprocess.run(
        [sys.executable, "-m", "deploy.rehearse", "--folder", str(tmp_path / "rehearsal")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=1500,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    passed = [line.split(" (")[0].removeprefix("ok ") for line in lines if line.startswith("ok ")]
    assert passed == STEPS
    assert lines[-1].startswith("rehearsal passed: 10 steps")
    assert not (tmp_path / "rehearsal").exists()  # removed once it passed


@pytest.fixture
def rds(tmp_path):
    from deploy.rehearsal.rds import Endpoint, RdsInstance, free_loopback_address
    from deploy.rehearsal.tls import CertificateAuthority

    authority = CertificateAuthority(tmp_path / "ca")
    master = Endpoint("covid-master.c0ffee.us-east-1.rds.amazonaws.com", free_loopback_address())
    replica = Endpoint("covid-replica.c0ffee.us-east-1.rds.amazonaws.com", free_loopback_address())
    with RdsInstance(
        tmp_path / "rds", authority, master, replica, "covid_admin", "master-pw", "dagster"
    ) as rds:
        rds.start()
        rds.start_replica()
        yield rds


def connect(
    rds, endpoint, login: str = "covid_admin", password: str = "master-pw", **options
) -> psycopg.Connection:
    return rds.connect(endpoint, login, password, "dagster", **options)


def test_the_rds_stand_in_refuses_what_rds_refuses(rds):
    """Its master is no superuser; TLS is required and verified against the instance's name; the
    replica is a read-only standby that gets roles and data by replication only."""
    with connect(rds, rds.master.endpoint) as conn:
        flags = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user"
        )
        assert flags.fetchone() == (False, True, True)
        conn.execute("CREATE ROLE replicated LOGIN")
        conn.execute("CREATE TABLE written AS SELECT 1 AS n")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="SUPERUSER"):
            conn.execute("ALTER ROLE replicated NOSUPERUSER")
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        connect(rds, rds.master.endpoint, sslmode="disable")
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        connect(rds, rds.master.endpoint, host="elsewhere.example.org")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect(rds, rds.master.endpoint, password="wrong")
    with pytest.raises(psycopg.OperationalError):  # RDS's own superuser never logs in from outside
        connect(rds, rds.master.endpoint, login="rdsadmin")
    rds.wait_for_replica()
    with connect(rds, rds.replica.endpoint) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'replicated'").fetchone() == (1,)
        assert conn.execute("SELECT n FROM written").fetchall() == [(1,)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("CREATE ROLE local_only")
