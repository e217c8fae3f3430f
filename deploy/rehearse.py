"""A fresh account's first deployment, played on this machine as AWS would run it.

    python -m deploy.rehearse [--keep] [--folder DIR]

deploy/deploy.sh itself (infra, ci, first-deploy, rotate) runs against moto's AWS over HTTP, through the
real AWS CLI; what AWS would then run, runs here: an RDS of the real shape (deploy/rehearsal/rds.py),
each container of each ECS task and service of the templates as a local process
(deploy/rehearsal/fargate.py), and so the init task, Dagster's webserver and daemon, Metabase's task
(its setup container against a stand-in for Metabase: deploy/rehearsal/metabase.py), the run the daemon
launches and the whole graph on the bundled sample. Then the dashboards' login reads the replica, and a
password is rotated. Each step prints `ok <step>` or `FAILED at step '<step>': why`, and the command
exits 1 at the first failure (keeping its folder, with every process's log). What it proves and what
it cannot: deploy/README.md.
"""

import argparse
import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

import boto3
import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "deploy.sh"
TEMPLATES = ROOT / "deploy" / "cloudformation"
SAMPLE = ROOT / "covid_pipeline" / "data" / "sample"
DASHBOARD = ROOT / "covid_pipeline" / "metabase" / "dashboard.yaml"
ENVIRONMENT, ACCOUNT, REGION = "covid", "123456789012", "us-east-1"
REPOSITORY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{ENVIRONMENT}/pipeline"
IMAGE_CA_BUNDLE = "/opt/covid/rds-ca-bundle.pem"  # where the image keeps the RDS CA bundle
# The images the rehearsal stands in for (Metabase's runs its API, not set up yet, as it first starts).
STAND_INS = {"metabase/metabase": [sys.executable, "-m", "deploy.rehearsal.metabase"]}
DAGSTER = ("dagster-webserver", "dagster-daemon")
SERVICES = (*DAGSTER, "metabase")
GRAPH_SECONDS = 900


class StepFailed(Exception):
    pass


def tail(text: str, lines: int = 25) -> str:
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/dagster/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    if "errors" in answer:
        raise StepFailed(f"GraphQL: {answer['errors']}")
    return answer["data"]


def until(what: str, check: Callable[[], object], seconds: float, interval: float = 1.0, alive=None):
    """`check()`'s first true answer; StepFailed naming `what` after `seconds` (or once `alive()` says why not)."""
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        if alive and (why := alive()):
            raise StepFailed(f"{what}: {why}")
        try:
            answer = check()
        except (OSError, psycopg.Error, StepFailed) as error:
            answer, last = None, error
        if answer:
            return answer
        time.sleep(interval)
    raise StepFailed(f"{what}: not within {seconds:.0f} s" + (f" (last: {last})" if last else ""))


class Rehearsal:
    def __init__(self, folder: Path):
        self.folder = folder
        self.steps: list[tuple[str, Callable[[], str | None]]] = [
            ("deploy.sh infra", self.infra),
            ("RDS master and read replica", self.rds_instances),
            ("deploy.sh ci", self.ci),
            ("first-deploy stops at a failed image build", self.failed_build_stops),
            ("deploy.sh first-deploy", self.first_deploy),
            ("webserver and daemon on Fargate", self.services_run),
            ("Metabase claimed by its setup container", self.metabase_claimed),
            ("the daemon's run on Fargate", self.run_on_fargate),
            ("raw and report stores on S3", self.stores),
            ("metabase_reader on the replica", self.reader_on_replica),
            ("deploy.sh rotate dagster", self.rotate),
        ]
        self.rds = None
        self.fargate = None
        self.moto = None
        self.sources = None

    # --- the stage: moto, Fargate, the CA, the sample's server, deploy.sh's tools ----------------

    def set_up(self) -> None:
        from moto.server import ThreadedMotoServer

        from covid_pipeline_tests.helpers.http import LoopbackServer
        from covid_pipeline_tests.helpers.moto_cloudformation import make_strict
        from deploy.rehearsal.fargate import Fargate, Image
        from deploy.rehearsal.tls import CertificateAuthority

        make_strict()
        # moto's server logs every request, and warns of each resource type it does not model
        # (helpers/moto_cloudformation.py says which, and why that is fine).
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        logging.getLogger("moto").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module="moto")
        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.moto.start()
        host, port = self.moto.get_host_and_port()
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            AWS_ACCESS_KEY_ID="rehearsal",
            AWS_SECRET_ACCESS_KEY="rehearsal",
            AWS_REGION=REGION,
            AWS_DEFAULT_REGION=REGION,
        )
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        self.authority = CertificateAuthority(self.folder / "ca")
        image = Image(extra_paths={IMAGE_CA_BUNDLE: self.authority.bundle})
        self.fargate = Fargate(self.folder / "tasks", image, REPOSITORY, {}, stand_ins=STAND_INS)
        self.fargate.install()
        # deploy.sh's tools: the AWS CLI (moto's endpoint from AWS_ENDPOINT_URL; `cloudformation deploy`
        # done for moto), started once (aws.py); docker and git stand-ins (docker.py; the working
        # tree as it is).
        tools = self.folder / "bin"
        tools.mkdir(parents=True)
        python = sys.executable
        self.aws_socket = Path(tempfile.mkdtemp(prefix="aws-")) / "cli.sock"  # short: a socket path
        scripts = {
            "aws": f'#!/bin/sh\nexec "{python}" -m deploy.rehearsal.aws "$@"\n',
            "docker": f'#!/bin/sh\nexec "{python}" -m deploy.rehearsal.docker "$@"\n',
            "git": f'#!/bin/sh\ncase "$*" in *"status --porcelain"*) exit 0 ;; esac\nexec "{shutil.which("git")}" "$@"\n',
        }
        for name, text in scripts.items():
            (tools / name).write_text(text)
            (tools / name).chmod(0o755)
        # Templates read once with cfn-lint's loader (each `aws cloudformation deploy` would again).
        from cfnlint.decode import decode

        decoded = self.folder / "templates"
        decoded.mkdir()
        for path in TEMPLATES.glob("*.yaml"):
            template, errors = decode(str(path))
            assert not errors, errors
            (decoded / f"{path.stem}.json").write_text(json.dumps(template, default=str))
        # Once per account (deploy/README.md): the Docker Hub token ECR's cache needs.
        hub = boto3.client("secretsmanager").create_secret(
            Name="ecr-pullthroughcache/docker-hub", SecretString='{"username": "u", "accessToken": "t"}'
        )["ARN"]
        # The registry and georef files: the bundled sample, published over HTTP here, and set as the
        # sources in Parameter Store (an operator's setting, read by every task).
        www = self.folder / "www"
        www.mkdir()
        for path in SAMPLE.glob("*.*"):
            shutil.copy(path, www / path.name)
        self.sources = LoopbackServer(www).__enter__()
        for name, file in (
            ("COVID_CASES_URL", "Covid19Casos.zip"),
            ("COVID_PROVINCES_URL", "provincias.csv"),
            ("COVID_DEPARTMENTS_URL", "departamentos.csv"),
        ):
            boto3.client("ssm").put_parameter(
                Name=f"/{ENVIRONMENT}/env/{name}", Value=f"{self.sources.base_url}/{file}", Type="String"
            )
        self.environment = {
            **os.environ,
            "PATH": f"{tools}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "ENVIRONMENT_NAME": ENVIRONMENT,
            "DEPLOY_SETTINGS_FILE": str(self.folder / "settings.env"),
            "REHEARSAL_DECODED_TEMPLATES": str(decoded),
            "REHEARSAL_DOCKER_STATE": str(self.folder),
            "TMPDIR": str(self.folder / "tmp"),
            "REHEARSAL_AWS_SOCKET": str(self.aws_socket),
            # What the README's first deployment sets; no certificate: the documented try-out mode.
            "ALB_INGRESS_CIDR": "203.0.113.0/24",
            "DOCKER_HUB_CREDENTIALS_ARN": hub,
            "METABASE_IMAGE_DIGEST": "sha256:" + "5" * 64,
        }
        (self.folder / "tmp").mkdir()
        self.aws = subprocess.Popen(
            [python, "-m", "deploy.rehearsal.aws", "serve", str(self.aws_socket)],
            env=self.environment,
            stdout=subprocess.PIPE,
            text=True,
        )
        if self.aws.stdout.readline().strip() != "ready":
            raise RuntimeError("the AWS CLI's zygote did not start")

    def tear_down(self) -> None:
        for stop in (
            lambda: self.aws.terminate(),
            lambda: self.fargate.stop(),
            lambda: self.rds.stop(),
            lambda: self.sources.__exit__(None, None, None),
            lambda: self.moto.stop(),
            lambda: shutil.rmtree(self.aws_socket.parent),
        ):
            with contextlib.suppress(Exception):
                stop()

    def deploy(self, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(DEPLOY), *arguments],
            env={**self.environment, **environment},
            capture_output=True,
            text=True,
            timeout=1200,
            stdin=subprocess.DEVNULL,
        )

    def stack_status(self, stack: str) -> str | None:
        try:
            (found,) = boto3.client("cloudformation").describe_stacks(StackName=f"{ENVIRONMENT}-{stack}")[
                "Stacks"
            ]
        except boto3.client("cloudformation").exceptions.ClientError:
            return None
        return found["StackStatus"]

    def secret(self, name: str) -> dict:
        value = boto3.client("secretsmanager").get_secret_value(SecretId=f"{ENVIRONMENT}/database/{name}")
        return json.loads(value["SecretString"])

    def failed_tasks(self) -> str:
        return "\n".join(
            f"task {', '.join(task.containers)} stopped ({task.stopped_reason}); its log:\n{tail(task.tail())}"
            for task in self.fargate.tasks.values()
            if task.stopping
            and any(c.exit_code not in (0, None) for c in task.containers.values())
            or task.stop_code == "TaskFailedToStart"
        )

    def task_of(self, container: str) -> list:
        """The run tasks (RunTask) that have a container of that name, oldest first."""
        return [task for task in self.fargate.tasks.values() if container in task.containers]

    # --- the steps --------------------------------------------------------------------------------

    def infra(self) -> str:
        result = self.deploy("infra")
        if result.returncode:
            raise StepFailed(f"deploy.sh infra exited {result.returncode}:\n{tail(result.stderr)}")
        stacks = ["network", "bastion", "storage", "registry", "database", "cluster"]
        statuses = {stack: self.stack_status(stack) for stack in stacks}
        if set(statuses.values()) != {"CREATE_COMPLETE"}:
            raise StepFailed(f"stacks not created: {statuses}")
        return f"{len(stacks)} stacks created"

    def rds_instances(self) -> str:
        from deploy.rehearsal.rds import Endpoint, RdsInstance, free_loopback_address

        instances = {
            instance["DBInstanceIdentifier"]: instance
            for instance in boto3.client("rds").describe_db_instances()["DBInstances"]
        }
        master, replica = (instances[f"{ENVIRONMENT}-{role}"]["Endpoint"] for role in ("master", "replica"))
        # What CloudFormation resolves from the master secret ({{resolve:secretsmanager:...}}).
        credentials = self.secret("master")
        self.master = Endpoint(master["Address"], free_loopback_address(), int(master["Port"]))
        self.replica = Endpoint(replica["Address"], free_loopback_address(), int(replica["Port"]))
        self.rds = RdsInstance(
            self.folder / "rds",
            self.authority,
            self.master,
            self.replica,
            credentials["username"],
            credentials["password"],
            database="dagster",  # database.yaml: DBName
        )
        self.rds.start()
        self.rds.start_replica()
        # The tasks reach the master by its endpoint's name (libpq's PGHOSTADDR stands in for DNS).
        self.fargate.extra_environment.update(self.master.libpq())
        return f"master {self.master.host}, replica {self.replica.host} (hot standby)"

    def ci(self) -> str:
        result = self.deploy("ci", "my-org/covid-pipeline")
        if result.returncode:
            raise StepFailed(f"deploy.sh ci exited {result.returncode}:\n{tail(result.stderr)}")
        return "ci stack created"

    def failed_build_stops(self) -> str:
        result = self.deploy("first-deploy", REHEARSAL_DOCKER_BUILD_FAILS="1")
        stacks = {stack: self.stack_status(stack) for stack in ("init", "services")}
        if result.returncode == 0 or set(stacks.values()) != {None}:
            raise StepFailed(
                f"deploy.sh went on after the image build failed (exit {result.returncode}, stacks {stacks}): "
                f"it deployed an image that was never pushed\n{tail(result.stderr)}\n{self.failed_tasks()}"
            )
        if "the image build failed" not in result.stderr:
            raise StepFailed(
                f"deploy.sh stopped, but without saying the build failed:\n{tail(result.stderr)}"
            )
        return "stopped before the services stack: " + tail(result.stderr, 1)

    def first_deploy(self) -> str:
        result = self.deploy("first-deploy")
        self.fargate.wait_idle()
        if result.returncode:
            raise StepFailed(
                f"deploy.sh first-deploy exited {result.returncode}:\n{tail(result.stderr)}\n{self.failed_tasks()}"
            )
        init = self.task_of("init-database")
        if not init or init[-1].containers["init-database"].exit_code != 0:
            raise StepFailed(f"the init task did not run to success\n{self.failed_tasks()}")
        statuses = {stack: self.stack_status(stack) for stack in ("init", "services")}
        return f"init task exited 0; stacks {statuses}"

    def service(self, name: str):
        task = self.fargate.services.get(name)
        if task is None:
            raise StepFailed(f"no task of service {name} runs")
        return task

    def webserver_port(self) -> int:
        return self.service("dagster-webserver").ports[3000]

    def services_alive(self, names: tuple[str, ...] = SERVICES) -> str | None:
        """Why a service of `names` has no running task, or None."""
        if self.fargate.errors:
            return "the Fargate stand-in failed:\n" + "\n".join(self.fargate.errors)
        self.fargate.wait_idle()
        for name in names:
            task = self.fargate.services.get(name)
            if task is None:
                return f"service {name} has no task"
            if task.stopping:
                return f"service {name}'s task stopped ({task.stopped_reason}):\n{tail(task.tail())}"
        return None

    def healthy_webserver(self) -> bool:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.webserver_port()}/dagster/server_info", timeout=5
        ) as r:
            return r.status == 200

    def services_run(self) -> str:
        until(
            "the webserver answers the load balancer's health check",
            self.healthy_webserver,
            240,
            alive=lambda: self.services_alive(DAGSTER),
        )

        def dagster_sessions():
            with self.rds.master.admin() as conn:
                return conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE usename = 'dagster' AND datname = 'dagster'"
                ).fetchone()[0]

        until(
            "webserver and daemon keep Dagster's storage as login dagster",
            dagster_sessions,
            120,
            alive=lambda: self.services_alive(DAGSTER),
        )
        # No certificate: no listener forwards to either target group, so neither service is attached.
        services = boto3.client("ecs").describe_services(cluster=ENVIRONMENT, services=list(SERVICES))
        attached = {s["serviceName"]: s["loadBalancers"] for s in services["services"] if s["loadBalancers"]}
        if attached:
            raise StepFailed(f"without a certificate, services attached to the load balancer: {attached}")
        return f"webserver on 127.0.0.1:{self.webserver_port()}, daemon running, neither attached"

    def metabase_claimed(self) -> str:
        """Metabase's task: rds-ca fills the volume with the RDS bundle and exits, Metabase reaches its
        database with it, the setup container makes the admin of <env>/metabase/admin its first user and
        then answers the load balancer's health check; a stranger who comes next is refused."""
        task = self.service("metabase")

        def ready() -> bool:
            with urllib.request.urlopen(f"http://127.0.0.1:{task.ports[3001]}/ready", timeout=5) as answer:
                return answer.status == 200

        until("the setup container answers /ready", ready, 240, alive=self.services_alive)
        if task.started[:1] != ["rds-ca"] or task.containers["rds-ca"].exit_code != 0:
            raise StepFailed(f"rds-ca did not run first and exit 0: {task.started}\n{tail(task.tail())}")
        admin = json.loads(
            boto3.client("secretsmanager").get_secret_value(SecretId=f"{ENVIRONMENT}/metabase/admin")[
                "SecretString"
            ]
        )
        metabase = f"http://127.0.0.1:{task.ports[3000]}"

        def call(method: str, path: str, body: dict | None = None, session: str = "") -> tuple[int, dict]:
            request = urllib.request.Request(
                metabase + path,
                data=json.dumps(body).encode() if body is not None else None,
                method=method,
                headers={"Content-Type": "application/json"}
                | ({"X-Metabase-Session": session} if session else {}),
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    text = answer.read()
                    return answer.status, json.loads(text) if text else {}
            except urllib.error.HTTPError as error:
                return error.code, {}

        status, properties = call("GET", "/api/session/properties")
        if not properties.get("has-user-setup"):
            raise StepFailed(f"Metabase is still unclaimed: {properties}\n{tail(task.tail())}")
        status, session = call(
            "POST", "/api/session", {"username": admin["username"], "password": admin["password"]}
        )
        if status != 200:
            raise StepFailed(
                f"the admin of secret {ENVIRONMENT}/metabase/admin cannot log in (HTTP {status})"
            )
        call("DELETE", "/api/session", session=session["id"])
        stranger = {"email": "me@stranger.example", "password": "m1ne-now-please"}
        token = properties.get("setup-token")
        status, _ = call(
            "POST", "/api/setup", {"token": token, "user": stranger, "prefs": {"site_name": "x"}}
        )
        if status != 403:
            raise StepFailed(f"a stranger's setup was answered HTTP {status}, not 403")
        with self.rds.master.admin("metabase") as conn:
            owner = conn.execute(
                "SELECT tableowner FROM pg_tables WHERE tablename = 'databasechangelog'"
            ).fetchone()
        if owner != ("metabase",):
            raise StepFailed(f"Metabase's first table in database metabase is owned by {owner}")
        return f"admin {admin['username']} set up, /ready answers, a stranger's setup refused"

    def run_on_fargate(self) -> str:
        runs_query = "{ runsOrError { ... on Runs { results { runId status tags { key value } } } } }"

        def finished_run():
            runs = graphql(self.webserver_port(), runs_query)["runsOrError"]["results"]
            done = [run for run in runs if run["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
            return done[0] if done else None

        run = until(
            "the new_publication sensor's run, launched on Fargate by the daemon, finished",
            finished_run,
            GRAPH_SECONDS,
            interval=2,
            alive=self.services_alive,
        )
        tags = {tag["key"]: tag["value"] for tag in run["tags"]}
        task = self.fargate.tasks.get(tags.get("ecs/task_arn", ""))
        if run["status"] != "SUCCESS":
            log = tail(task.tail(), 60) if task else tail(self.service("dagster-daemon").tail(), 60)
            raise StepFailed(f"run {run['runId']} ended {run['status']}:\n{log}")
        if task is None or list(task.containers) != ["run"]:
            raise StepFailed(f"run {run['runId']} did not run as an ECS task of the run definition: {tags}")
        exit_code = self.fargate.wait(task.arn, 120).containers["run"].exit_code
        if exit_code != 0:  # the worker exits once it has said SUCCESS
            raise StepFailed(
                f"run {run['runId']}'s task stopped with exit code {exit_code}:\n{tail(task.tail())}"
            )
        nodes = graphql(
            self.webserver_port(),
            "{ assetNodes { assetKey { path } assetMaterializations(limit: 1) { runId } } }",
        )["assetNodes"]
        missing = [
            "/".join(node["assetKey"]["path"])
            for node in nodes
            if [m["runId"] for m in node["assetMaterializations"]] != [run["runId"]]
        ]
        if missing:
            raise StepFailed(f"not materialized by run {run['runId']}: {missing}")
        with self.rds.master.admin("covid") as conn:
            owners = {
                owner
                for (owner,) in conn.execute(
                    "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname IN ('covid', 'reporting')"
                ).fetchall()
            }
        if owners != {"covid_pipeline"}:
            raise StepFailed(f"the warehouse's tables are owned by {owners}, not the covid_pipeline login")
        return (
            f"run {run['runId'][:8]} SUCCESS as task {task.arn.rsplit('/', 1)[-1][:8]}: {len(nodes)} assets"
        )

    def stores(self) -> str:
        ssm = boto3.client("ssm")
        found = {}
        for setting in ("COVID_RAW_STORE", "COVID_REPORTS_STORE"):
            location = ssm.get_parameter(Name=f"/{ENVIRONMENT}/env/{setting}")["Parameter"]["Value"]
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            keys = [
                item["Key"]
                for item in boto3.client("s3")
                .list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
                .get("Contents", [])
            ]
            found[setting] = keys
        raw = found["COVID_RAW_STORE"]
        if not any(key.endswith("manifest.json") for key in raw) or not any(
            key.endswith(".zip") for key in raw
        ):
            raise StepFailed(f"the raw store holds {raw}")
        if not any(key.endswith(".html") for key in found["COVID_REPORTS_STORE"]):
            raise StepFailed(f"the report store holds {found['COVID_REPORTS_STORE']}")
        return f"{len(raw)} raw objects, {len(found['COVID_REPORTS_STORE'])} report objects"

    def reader_on_replica(self) -> str:
        self.rds.wait_for_replica()
        password = self.secret("metabase-reader")["password"]
        with self.rds.connect(self.replica, "metabase_reader", password, "covid") as conn:
            if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                raise StepFailed("the replica is not a standby")
            relations = conn.execute(
                """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname IN ('covid', 'reporting') AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                    ORDER BY 1, 2"""
            ).fetchall()
            read, refused, problems = 0, 0, []
            for schema, name in relations:
                statement = f'SELECT * FROM "{schema}"."{name}" LIMIT 1'
                try:
                    conn.execute(statement).fetchall()
                    read += 1
                    if schema == "covid":
                        problems.append(f"covid.{name} is readable")
                except psycopg.errors.InsufficientPrivilege:
                    refused += 1
                    if schema == "reporting":
                        problems.append(f"reporting.{name} is not readable")
            cards = yaml.safe_load(DASHBOARD.read_text())["cards"]
            for card in cards:
                try:
                    conn.execute(card["sql"]).fetchall()
                except psycopg.Error as error:
                    problems.append(f"card {card['key']}: {error}")
            with contextlib.suppress(psycopg.Error), conn.transaction():
                conn.execute("CREATE TEMPORARY TABLE written (n int)")
                problems.append("the replica took a write")
        if problems or not read or not refused:
            raise StepFailed("; ".join(problems) or f"{read} relations read, {refused} refused")
        return f"{read} reporting relations read, {refused} in covid refused, {len(cards)} cards ran"

    def rotate(self) -> str:
        old = self.secret("dagster")["password"]
        before = {name: self.service(name).arn for name in ("dagster-webserver", "dagster-daemon")}
        started = time.time()
        result = self.deploy("rotate", "dagster")
        if result.returncode:
            raise StepFailed(
                f"deploy.sh rotate exited {result.returncode}:\n{tail(result.stderr)}\n{self.failed_tasks()}"
            )
        leftovers = list((self.folder / "tmp").iterdir())
        if leftovers:
            raise StepFailed(f"rotate left {leftovers} behind")
        new = self.secret("dagster")["password"]
        if new == old:
            raise StepFailed("the secret still holds the old password")
        with contextlib.suppress(psycopg.OperationalError):
            self.rds.connect(self.master, "dagster", old, "dagster").close()
            raise StepFailed("the old password still logs in")
        self.rds.connect(self.master, "dagster", new, "dagster").close()

        def restarted():
            self.fargate.wait_idle()
            return all(
                (task := self.fargate.services.get(name)) and task.arn != arn and task.started
                for name, arn in before.items()
            )

        until("webserver and daemon restarted on the new password", restarted, 120)
        until("the webserver answers again", self.healthy_webserver, 240, alive=self.services_alive)

        def reconnected():
            data = graphql(
                self.webserver_port(),
                "{ runsOrError { ... on Runs { results { runId } } } "
                "instance { daemonHealth { allDaemonStatuses { daemonType required healthy lastHeartbeatTime } } } }",
            )
            daemons = [d for d in data["instance"]["daemonHealth"]["allDaemonStatuses"] if d["required"]]
            fresh = all(d["healthy"] and (d["lastHeartbeatTime"] or 0) > started for d in daemons)
            return data["runsOrError"]["results"] and fresh

        until(
            "webserver and daemon back on Dagster's storage",
            reconnected,
            180,
            interval=2,
            alive=self.services_alive,
        )
        return "new password in the secret and the database; webserver and daemon reconnected"

    # --- running it -----------------------------------------------------------------------------

    def play(self, say: Callable[[str], None] = print) -> bool:
        began = time.monotonic()
        try:
            self.set_up()
            for title, step in self.steps:
                say(f"== {title}")
                started = time.monotonic()
                try:
                    detail = step()
                except Exception as error:  # a step's failure, whatever raised it, names the step
                    say(f"FAILED at step '{title}': {error}")
                    return False
                say(f"ok {title} ({time.monotonic() - started:.1f} s){': ' + detail if detail else ''}")
        finally:
            self.tear_down()
        say(f"rehearsal passed: {len(self.steps)} steps in {time.monotonic() - began:.0f} s")
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.rehearse", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--folder", type=Path, help="where to keep logs and state (default: a temporary folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the folder even when the rehearsal passes")
    arguments = parser.parse_args(argv)
    folder = arguments.folder or Path(tempfile.mkdtemp(prefix="rehearsal-"))
    folder.mkdir(parents=True, exist_ok=True)
    passed = Rehearsal(folder).play(lambda line: print(line, flush=True))
    if passed and not arguments.keep:
        shutil.rmtree(folder, ignore_errors=True)
    else:
        print(f"logs and state: {folder}", flush=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
