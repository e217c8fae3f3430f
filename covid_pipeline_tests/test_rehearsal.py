"""The rehearsal of a fresh account's first deployment (`python -m deploy.rehearse`), and the RDS it
stands up being as strict as RDS.

The rehearsal runs as its own process, as a user runs it: it serves moto and hooks Fargate into it,
which must not touch the moto server the other tests share.
"""

import json
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
    "Metabase claimed by its setup container",
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
    assert lines[-1].startswith(f"rehearsal passed: {len(STEPS)} steps")
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


# --- Fargate's stand-in: a task's containers as ECS runs them --------------------------------------

READER = """import json, os, pathlib, sys, time
mounts = json.loads(os.environ["REHEARSAL_MOUNTS"])
for path, local in sorted(mounts.items()):
    print(path, sorted(p.name for p in pathlib.Path(local).iterdir()), flush=True)
print(pathlib.Path(mounts["/opt/covid"], "rds-ca-bundle.pem").read_text(), flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 600)
sys.exit(3)
"""


@pytest.fixture
def fargate(tmp_path, moto_endpoint):
    """The stand-in on the suite's moto (not hooked into it: tasks are run directly), with the pipeline image
    in ECR and an image of its own, `example/reader`, standing in for a foreign one."""
    from types import SimpleNamespace

    import boto3

    from deploy.rehearsal.fargate import Fargate, Image

    repository = boto3.client("ecr").create_repository(repositoryName=f"fargate-{os.urandom(3).hex()}")
    uri = repository["repository"]["repositoryUri"]
    boto3.client("ecr").put_image(
        repositoryName=repository["repository"]["repositoryName"],
        imageManifest=json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 0},
                "layers": [],
            }
        ),
        imageTag="v1",
    )
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("the RDS CA bundle\n")
    image = Image(extra_paths={"/opt/covid/rds-ca-bundle.pem": bundle})
    stand_ins = {"example/reader": [sys.executable, "-c", READER]}
    fargate = Fargate(tmp_path / "tasks", image, uri, {}, stand_ins=stand_ins)
    fargate.start()
    count = iter(range(1000))

    def run(*containers: dict, volumes=("shared",)):
        arn = f"arn:aws:ecs:us-east-1:123456789012:task/test/{next(count)}"
        definition = SimpleNamespace(
            arn="arn:aws:ecs:us-east-1:123456789012:task-definition/test:1",
            container_definitions=[{"essential": True} | c for c in containers],
            volumes=[{"name": name} for name in volumes],
        )
        return fargate.wait(fargate.run(arn, definition).arn, 60)

    fargate.pipeline = f"{uri}:v1"
    fargate.run_task = run
    yield fargate
    fargate.stop()


def test_the_fargate_stand_in_runs_a_tasks_containers_as_ecs_does(fargate):
    """Dependencies in order, the task volume filled from the image's VOLUME, the task stopped when an essential
    container exits (the others terminated), each container's exit code kept."""
    shared = [{"sourceVolume": "shared", "containerPath": "/opt/covid"}]
    task = fargate.run_task(
        {
            "name": "rds-ca",
            "image": fargate.pipeline,
            "essential": False,
            "command": ["true"],
            "mountPoints": shared,
        },
        {
            "name": "reader",
            "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/hub/example/reader@sha256:" + "0" * 64,
            "dependsOn": [{"containerName": "rds-ca", "condition": "SUCCESS"}],
            "mountPoints": shared + [{"sourceVolume": "scratch", "containerPath": "/scratch"}],
        },
        {
            "name": "quitter",
            "image": "example/reader:1",
            "command": ["1"],
            "dependsOn": [{"containerName": "reader", "condition": "START"}],
            "mountPoints": shared,
        },
        volumes=("shared", "scratch"),
    )
    assert task.started == ["rds-ca", "reader", "quitter"]
    assert task.stopped_reason == "Essential container in task exited (quitter, exit code 3)"
    assert {name: c.exit_code for name, c in task.containers.items()} == {
        "rds-ca": 0,
        "reader": -15,
        "quitter": 3,
    }
    # /opt/covid is a VOLUME of the image: its files fill the volume; /scratch is not, it stays empty.
    reader = task.containers["reader"].tail()
    assert "/opt/covid ['rds-ca-bundle.pem']" in reader and "/scratch []" in reader
    assert "the RDS CA bundle" in reader


def test_the_fargate_stand_in_refuses_what_ecs_refuses(fargate):
    reader = {"name": "reader", "image": "example/reader:1", "command": ["0"]}
    prepare = {"name": "prepare", "image": fargate.pipeline, "essential": False, "command": ["false"]}
    after = reader | {"dependsOn": [{"containerName": "prepare", "condition": "SUCCESS"}]}
    task = fargate.run_task(prepare, after)
    assert task.started == ["prepare"] and task.containers["prepare"].exit_code == 1
    assert task.stopped_reason == "dependency of reader on prepare (SUCCESS) cannot be met: prepare exited 1"
    for containers, refusal in (
        ([reader | {"essential": False}], "at least one essential container"),
        (
            [
                reader,
                after | {"name": "late", "dependsOn": [{"containerName": "reader", "condition": "COMPLETE"}]},
            ],
            "COMPLETE cannot be set on the essential container reader",
        ),
        ([reader | {"dependsOn": [{"containerName": "nobody", "condition": "START"}]}], "unknown nobody"),
        ([reader | {"image": "docker.io/someone/else:latest"}], "CannotPullContainerError"),
        ([reader | {"image": fargate.pipeline.replace(":v1", ":v2")}], "CannotPullContainerError"),
        (
            [
                reader
                | {"secrets": [{"name": "X", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/no"}]}
            ],
            "ResourceInitializationError",
        ),
    ):
        task = fargate.run_task(*containers)
        assert task.started == [] and task.stop_code == "TaskFailedToStart", refusal
        assert refusal in task.stopped_reason
