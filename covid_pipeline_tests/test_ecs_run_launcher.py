"""The AWS deployment's Dagster instance, loaded for real: Postgres storage on the embedded server,
and the Dagster daemon, started through the image's entrypoint, launching a queued run as a
Fargate task with the EcsRunLauncher on moto's ECS server over HTTP.

Only what CloudFormation would have created is made by hand here: the cluster, the subnets and
security group, the run task definition (same family and container name as services.yaml) and
the Parameter Store entries the image's entrypoint turns into environment variables. The run task
definition's ARN, revision included, reaches the daemon as its task definition sets it.

moto's RunTask ignores a capacity provider strategy (the deployment launches runs on FARGATE_SPOT)
and then places the task on a registered container instance: the cluster gets one, a gap of moto's
that changes nothing in what the launcher sends.
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import boto3
import psycopg
import pytest
import yaml
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[1]
INSTANCE_TEMPLATE = ROOT / "deploy" / "dagster" / "dagster.yaml"
WORKSPACE = ROOT / "deploy" / "dagster" / "workspace.yaml"
ENTRYPOINT = ROOT / "docker" / "entrypoint.py"
RUN_FAMILY = "covid-run"  # services.yaml: ${EnvironmentName}-run
PASSWORD = f"secret-{uuid.uuid4().hex}"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/covid-pipeline:0123abc"


def load_entrypoint():
    spec = importlib.util.spec_from_file_location("entrypoint", ENTRYPOINT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def aws_run_resources(moto_endpoint, s3_bucket) -> SimpleNamespace:
    """What the stacks create for runs, on moto, and the Parameter Store entries they write."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})  # as network.yaml
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for cidr, zone in (("10.0.16.0/24", "us-east-1a"), ("10.0.17.0/24", "us-east-1b"))
    ]
    group = ec2.create_security_group(GroupName="run-tasks", Description="run tasks", VpcId=vpc)["GroupId"]
    ecs = boto3.client("ecs")
    cluster = ecs.create_cluster(
        clusterName=f"covid-{uuid.uuid4().hex[:8]}", capacityProviders=["FARGATE", "FARGATE_SPOT"]
    )["cluster"]["clusterName"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    instance = ec2.run_instances(ImageId=image, InstanceType="m5.2xlarge", MinCount=1, MaxCount=1)
    document = {"instanceId": instance["Instances"][0]["InstanceId"], "region": "us-east-1"}
    ecs.register_container_instance(cluster=cluster, instanceIdentityDocument=json.dumps(document))
    definition = {
        "family": RUN_FAMILY,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "1024",
        "memory": "4096",
        "containerDefinitions": [{"name": "run", "image": IMAGE, "essential": True, "memory": 4096}],
    }
    task_definition = ecs.register_task_definition(**definition)["taskDefinition"]
    # A later revision of the family (another run size): the daemon must keep launching the one
    # its task definition names, not whichever revision is the family's latest.
    later = ecs.register_task_definition(**{**definition, "memory": "8192"})["taskDefinition"]
    # What cluster.yaml and storage.yaml write under /<EnvironmentName>/env/.
    parameters = {
        "DAGSTER_ECS_CLUSTER": cluster,
        "DAGSTER_RUN_CAPACITY_PROVIDER": "FARGATE_SPOT",
        "DAGSTER_RUN_SUBNETS": ",".join(subnets),
        "DAGSTER_RUN_SECURITY_GROUP": group,
        "DAGSTER_COMPUTE_LOGS_BUCKET": s3_bucket,
    }
    path = f"/covid-{uuid.uuid4().hex[:8]}/env"
    for name, value in parameters.items():
        boto3.client("ssm").put_parameter(Name=f"{path}/{name}", Value=value, Type="String")
    return SimpleNamespace(
        task_definition_arn=task_definition["taskDefinitionArn"],
        later_revision_arn=later["taskDefinitionArn"],
        cluster=cluster,
        subnets=subnets,
        security_group=group,
        parameter_path=path,
        parameter_names=set(parameters),
    )


@pytest.fixture
def deployment_instance(tmp_path, monkeypatch, database_url, aws_run_resources):
    """The deployment dagster.yaml rendered as the webserver/daemon entrypoint does, then loaded."""
    from dagster import DagsterInstance

    info = psycopg.conninfo.conninfo_to_dict(database_url)
    # The embedded server listens on a unix socket only: an empty host makes libpq use PGHOST.
    monkeypatch.setenv("PGHOST", info["host"])
    environment = {
        **load_entrypoint().parameters_under(aws_run_resources.parameter_path),
        "DAGSTER_PG_HOST": "",
        # services.yaml: the daemon's and the webserver's DAGSTER_RUN_TASK_DEFINITION (!Ref RunTaskDefinition)
        "DAGSTER_RUN_TASK_DEFINITION": aws_run_resources.task_definition_arn,
        "DAGSTER_PG_PORT": str(info.get("port") or 5432),
        "DAGSTER_PG_DB": info["dbname"],
        "DAGSTER_PG_USERNAME": info["user"],
        # The embedded server trusts local connections, so any password works: this one must
        # never show up in what is sent to ECS.
        "DAGSTER_PG_PASSWORD": PASSWORD,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster-home"
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_INSTANCE_TEMPLATE", str(INSTANCE_TEMPLATE))
    load_entrypoint().write_instance(os.environ)
    with DagsterInstance.from_config(str(home)) as instance:
        yield instance


def test_rendering_names_every_missing_variable():
    with pytest.raises(SystemExit, match="DAGSTER_RUN_SECURITY_GROUP, DAGSTER_RUN_SUBNETS"):
        load_entrypoint().render(INSTANCE_TEMPLATE.read_text(), {})


def test_deployment_instance_uses_postgres_and_the_ecs_run_launcher(
    deployment_instance, database_url, aws_run_resources
):
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_aws.ecs import EcsRunLauncher
    from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = deployment_instance
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    assert isinstance(instance.compute_log_manager, S3ComputeLogManager)
    assert instance.run_monitoring_enabled and instance.run_retries_enabled
    assert instance.run_retries_max_retries == 2

    launcher = instance.run_launcher
    assert isinstance(launcher, EcsRunLauncher)
    # The revision its task definition names, though the family has a later one.
    assert launcher.task_definition == aws_run_resources.task_definition_arn
    assert launcher.task_definition != aws_run_resources.later_revision_arn
    assert launcher.run_task_kwargs["capacityProviderStrategy"] == [
        {"capacityProvider": "FARGATE_SPOT", "weight": 1}
    ]
    assert "launchType" not in launcher.run_task_kwargs
    network = launcher.run_task_kwargs["networkConfiguration"]["awsvpcConfiguration"]
    assert network["subnets"] == aws_run_resources.subnets
    assert network["securityGroups"] == [aws_run_resources.security_group]
    assert network["assignPublicIp"] == "DISABLED"

    # Dagster created its schema in the configured database (the one on the RDS master in AWS).
    with psycopg.connect(database_url) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    assert {"runs", "event_logs", "jobs"} <= tables


# Where the Dockerfile puts the deployment's files, and where they are in this checkout.
IN_IMAGE = {
    "/opt/dagster/deploy/dagster.yaml": str(INSTANCE_TEMPLATE),
    "/opt/dagster/deploy/workspace.yaml": str(WORKSPACE),
}


@contextmanager
def container_process(definition: str, resources: SimpleNamespace, log_path: Path, **overrides: str):
    """The container of a services.yaml task definition, started as ECS would start it: its
    command through the image's entrypoint, its environment, and the stacks' configuration from
    Parameter Store (not from this process). `overrides` replace command arguments."""
    parsed, _ = decode(str(ROOT / "deploy" / "cloudformation" / "services.yaml"))
    (spec,) = parsed["Resources"][definition]["Properties"]["ContainerDefinitions"]
    command = [IN_IMAGE.get(arg, overrides.get(arg, arg)) for arg in spec["Command"]]
    environment = {name: value for name, value in os.environ.items() if name not in resources.parameter_names}
    from_stacks = {
        "SSM_ENV_PATH": resources.parameter_path,
        "DAGSTER_RUN_TASK_DEFINITION": resources.task_definition_arn,
    }
    for variable in spec["Environment"]:
        name, value = variable["Name"], variable["Value"]
        # (PGSSLMODE/PGSSLROOTCERT as they are: libpq uses no TLS on the embedded server's socket; the TLS
        # settings are tried against a TLS server in test_database_tls.py)
        environment[name] = from_stacks[name] if name in from_stacks else IN_IMAGE.get(value, value)
    environment["DAGSTER_HOME"] = str(log_path.with_suffix(".home"))
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(ENTRYPOINT), *command], env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def daemon(deployment_instance, aws_run_resources, tmp_path):
    with container_process("DaemonTaskDefinition", aws_run_resources, tmp_path / "daemon.log") as process:
        yield process


def wait_for_task(cluster: str, daemon, seconds: float = 90) -> list[str]:
    """The cluster's tasks once there is one; bounded, and stops early if the daemon dies."""
    ecs = boto3.client("ecs")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and daemon.poll() is None:
        arns = ecs.list_tasks(cluster=cluster)["taskArns"]
        if arns:
            return arns
        time.sleep(0.5)
    return []


@pytest.mark.slow
def test_the_daemon_launches_a_queued_run_as_one_fargate_task_of_the_run_task_definition(
    deployment_instance, aws_run_resources, daemon, tmp_path
):
    from dagster import DagsterRunStatus
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster._grpc.types import ExecuteRunArgs
    from dagster._serdes import deserialize_value

    from covid_pipeline.definitions import defs

    # What the webserver does when someone clicks "Materialize all": the run is queued.
    instance = deployment_instance
    with WorkspaceProcessContext(instance, WorkspaceFileTarget(paths=[str(WORKSPACE)])) as process:
        workspace = process.create_request_context()
        location = workspace.get_code_location("covid_pipeline")
        repository = next(iter(location.get_repositories().values()))
        remote_job = repository.get_full_job("refresh_everything")
        run = instance.create_run_for_job(
            defs.resolve_job_def("refresh_everything"),
            remote_job_origin=remote_job.get_remote_origin(),
            job_code_origin=remote_job.get_python_origin(),
        )
        instance.submit_run(run.run_id, workspace)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.QUEUED

    cluster = aws_run_resources.cluster
    task_arns = wait_for_task(cluster, daemon)
    assert task_arns, (tmp_path / "daemon.log").read_text()[-3000:]
    run = instance.get_run_by_id(run.run_id)
    assert run.status == DagsterRunStatus.STARTING
    assert task_arns == [run.tags["ecs/task_arn"]]
    task = boto3.client("ecs").describe_tasks(cluster=cluster, tasks=task_arns, include=["TAGS"])["tasks"][0]

    assert task["taskDefinitionArn"] == aws_run_resources.task_definition_arn  # revision 1, not the latest
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "run"
    command = override["command"]
    assert command[:3] == ["dagster", "api", "execute_run"]
    # What the run worker gets: this run, this instance's storage, the code from the installed package.
    args = deserialize_value(command[3], ExecuteRunArgs)
    assert args.run_id == run.run_id
    assert args.instance_ref.run_storage_data.class_name == "PostgresRunStorage"
    assert args.job_origin.repository_origin.code_pointer.module == "covid_pipeline.definitions"
    assert PASSWORD not in json.dumps(task, default=str)
    assert {"key": "dagster/run_id", "value": run.run_id} in task["tags"]
    details = {detail["name"]: detail["value"] for detail in task["attachments"][0]["details"]}
    assert details["subnetId"] in aws_run_resources.subnets


@pytest.mark.slow
def test_the_webserver_answers_the_load_balancers_health_check(
    deployment_instance, aws_run_resources, tmp_path
):
    cluster, _ = decode(str(ROOT / "deploy" / "cloudformation" / "cluster.yaml"))
    health_path = cluster["Resources"]["DagsterTargetGroup"]["Properties"]["HealthCheckPath"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "webserver.log"
    overrides = {"0.0.0.0": "127.0.0.1", "3000": str(port)}
    with container_process("WebserverTaskDefinition", aws_run_resources, log, **overrides) as webserver:
        deadline, answer = time.monotonic() + 90, None
        while answer is None and time.monotonic() < deadline and webserver.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{health_path}", timeout=5) as response:
                    answer = response.status, json.loads(response.read())
            except OSError:
                time.sleep(0.5)
    assert answer is not None, log.read_text()[-3000:]
    status, info = answer
    assert status == 200 and info["dagster_version"]


def test_entrypoint_loads_parameter_store_renders_the_instance_and_runs_the_command(moto_endpoint, tmp_path):
    path = f"/covid-{uuid.uuid4().hex[:8]}/env"
    ssm = boto3.client("ssm")
    for name, value in {
        "COVID_RAW_STORE": "s3://raw-bucket/raw",
        "DAGSTER_RUN_SUBNETS": "subnet-1,subnet-2",
        "DAGSTER_RUN_SECURITY_GROUP": "sg-1",
        "DAGSTER_RUN_CAPACITY_PROVIDER": "FARGATE_SPOT",
        "DAGSTER_PG_PASSWORD": "from-parameter-store",
    }.items():
        ssm.put_parameter(Name=f"{path}/{name}", Value=value, Type="String")
    ssm.put_parameter(Name=f"{path}/nested/IGNORED", Value="x", Type="String")
    home = tmp_path / "home"
    environment = {
        **os.environ,
        "SSM_ENV_PATH": path,
        "DAGSTER_HOME": str(home),
        "DAGSTER_INSTANCE_TEMPLATE": str(INSTANCE_TEMPLATE),
        "DAGSTER_PG_PASSWORD": "from-ecs-secrets",  # what the task definition sets wins
    }
    show = "import json, os; print(json.dumps(dict(os.environ)))"
    result = subprocess.run(
        [sys.executable, str(ENTRYPOINT), sys.executable, "-c", show],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    seen = json.loads(result.stdout.splitlines()[-1])
    assert seen["COVID_RAW_STORE"] == "s3://raw-bucket/raw"
    assert seen["DAGSTER_PG_PASSWORD"] == "from-ecs-secrets"
    assert "IGNORED" not in seen
    rendered = yaml.safe_load((home / "dagster.yaml").read_text())
    network = rendered["run_launcher"]["config"]["run_task_kwargs"]["networkConfiguration"]
    assert network["awsvpcConfiguration"]["subnets"] == ["subnet-1", "subnet-2"]
    assert network["awsvpcConfiguration"]["securityGroups"] == ["sg-1"]
    assert rendered["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
