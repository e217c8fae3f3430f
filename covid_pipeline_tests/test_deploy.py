"""The AWS deployment as far as it can be checked without AWS or a Docker engine.

- Every CloudFormation template passes cfn-lint (no errors; warnings are reported), and the properties the design relies on are there
  (read with cfn-lint's own loader, so !Ref / !Sub / !ImportValue parse).
- The stacks fit together: each import is exported by a stack deployed earlier (deploy.sh's order),
  and every variable the Dagster containers need reaches them (Parameter Store or ECS secrets).
- The workflows pass actionlint, the Dockerfile hadolint, the shell scripts shellcheck (all three
  installed as binaries by their PyPI wheels), and the image's pins satisfy pyproject.toml.
- The database initialisation task runs, twice, against a real PostgreSQL.
"""

import importlib.util
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import warnings
from functools import cache
from pathlib import Path

import psycopg
import pytest
import yaml
from cfnlint.api import lint_file
from cfnlint.decode import decode
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "deploy" / "cloudformation"
DEPLOY_SCRIPT = ROOT / "deploy" / "deploy.sh"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
WORKFLOWS = ROOT / ".github" / "workflows"
ENV_PARAMETER = re.compile(r"^/\$\{EnvironmentName\}/env/([A-Z_][A-Z0-9_]*)$")


def stack_order() -> list[str]:
    line = re.search(r"^STACK_ORDER=\((.*)\)$", DEPLOY_SCRIPT.read_text(), re.MULTILINE)
    return line.group(1).split()


@cache
def template(stack: str) -> dict:
    parsed, errors = decode(str(TEMPLATES / f"{stack}.yaml"))
    assert not errors, errors
    return parsed


def resources(stack: str, kind: str) -> dict[str, dict]:
    return {
        name: resource.get("Properties", {})
        for name, resource in template(stack)["Resources"].items()
        if resource["Type"] == kind
    }


def walk(node):
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def imports_of(stack: str) -> set[str]:
    return {
        node["Fn::ImportValue"]["Fn::Sub"]
        for node in walk(template(stack))
        if isinstance(node, dict) and "Fn::ImportValue" in node
    }


def exports_of(stack: str) -> set[str]:
    return {
        output["Export"]["Name"]["Fn::Sub"]
        for output in template(stack).get("Outputs", {}).values()
        if "Export" in output
    }


def tool(name: str) -> str:
    """A linter installed by its PyPI wheel: beside this interpreter, else on PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    assert found, f"{name} is missing: python -m pip install -e '.[dev]'"
    return found


# --- CloudFormation -------------------------------------------------------------------------------


def test_every_template_is_deployed_by_the_script():
    assert sorted(stack_order()) == sorted(path.stem for path in TEMPLATES.glob("*.yaml"))


@pytest.mark.parametrize("stack", sorted(path.stem for path in TEMPLATES.glob("*.yaml")))
def test_template_passes_cfn_lint(stack):
    path = TEMPLATES / f"{stack}.yaml"
    # `aws cloudformation deploy` sends a template inline only up to 51,200 bytes (else: an S3 bucket).
    assert path.stat().st_size < 51_200
    matches = lint_file(path)
    errors = [str(match) for match in matches if match.rule.id.startswith("E")]
    assert not errors, "\n".join(errors)
    # None today. A newer cfn-lint may add warning rules (deprecations): shown, not failing CI.
    for match in matches:
        if match.rule.id.startswith("W"):
            warnings.warn(f"cfn-lint: {match}", stacklevel=1)


def test_each_import_is_exported_by_an_earlier_stack():
    exported: set[str] = set()
    for stack in stack_order():
        missing = imports_of(stack) - exported
        assert not missing, f"{stack} imports {sorted(missing)} before any stack exports them"
        exported |= exports_of(stack)


def test_network_spans_two_zones_with_three_tiers_and_guarded_private_subnets():
    subnets = resources("network", "AWS::EC2::Subnet")
    assert len(subnets) == 6
    zones = {str(props["AvailabilityZone"]["Fn::Select"][0]) for props in subnets.values()}
    assert zones == {"0", "1"}
    assert len(resources("network", "AWS::EC2::RouteTable")) == 3
    acl_subnets = {
        props["SubnetId"]["Ref"]
        for props in resources("network", "AWS::EC2::SubnetNetworkAclAssociation").values()
    }
    assert acl_subnets == {"AppSubnetA", "AppSubnetB", "DatabaseSubnetA", "DatabaseSubnetB"}
    groups = set(resources("network", "AWS::EC2::SecurityGroup"))
    roles = ("Alb", "Webserver", "Daemon", "RunTask", "Metabase", "Bastion", "Database")
    assert {f"{role}SecurityGroup" for role in roles} <= groups
    endpoints = resources("network", "AWS::EC2::VPCEndpoint").values()
    services = {props["ServiceName"]["Fn::Sub"].split("${AWS::Region}.")[1] for props in endpoints}
    assert services == {"s3", "ecr.api", "ecr.dkr", "logs", "secretsmanager", "ssm", "ecs"}
    # Only the load balancer takes traffic from outside the VPC, and only from the allowed range.
    database_sources = {
        props["SourceSecurityGroupId"]["Ref"]
        for props in resources("network", "AWS::EC2::SecurityGroupIngress").values()
        if props["GroupId"]["Ref"] == "DatabaseSecurityGroup"
    }
    assert database_sources == {f"{role}SecurityGroup" for role in roles if role != "Alb"}
    for name, props in resources("network", "AWS::EC2::SecurityGroup").items():
        for rule in props.get("SecurityGroupIngress", []):
            assert name in ("AlbSecurityGroup", "EndpointSecurityGroup"), name
            assert rule["CidrIp"] in ({"Ref": "AlbIngressCidr"}, {"Ref": "VpcCidr"})


def test_database_is_a_private_encrypted_multi_az_master_with_a_read_replica():
    instances = resources("database", "AWS::RDS::DBInstance")
    master, replica = instances["Master"], instances["Replica"]
    assert master["MultiAZ"] is True
    assert master["StorageEncrypted"] is True
    assert master["PubliclyAccessible"] is False and replica["PubliclyAccessible"] is False
    assert master["DeletionProtection"] == {"Ref": "DeletionProtection"}
    assert replica["SourceDBInstanceIdentifier"] == {"Ref": "Master"}
    assert master["BackupRetentionPeriod"] == {"Ref": "BackupRetentionDays"}  # replicas need backups
    # The password is generated by Secrets Manager and resolved by CloudFormation, never typed.
    assert master["MasterUserPassword"]["Fn::Sub"].startswith("{{resolve:secretsmanager:${MasterSecret}")
    assert all(
        "GenerateSecretString" in props
        for props in resources("database", "AWS::SecretsManager::Secret").values()
    )
    for stack in stack_order():
        for name in template(stack)["Parameters"]:
            assert "password" not in name.lower() and "secret" not in name.lower(), (stack, name)


def test_buckets_are_encrypted_private_versioned_and_raw_data_ages_out():
    buckets = resources("storage", "AWS::S3::Bucket")
    assert set(buckets) == {"RawBucket", "ReportsBucket"}
    for props in buckets.values():
        assert all(props["PublicAccessBlockConfiguration"].values())
        assert len(props["PublicAccessBlockConfiguration"]) == 4
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    raw_rules = {rule["Id"]: rule for rule in buckets["RawBucket"]["LifecycleConfiguration"]["Rules"]}
    assert raw_rules["raw-sources-age-out"]["Transitions"]
    policies = resources("storage", "AWS::S3::BucketPolicy").values()
    assert all(
        policy["PolicyDocument"]["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for policy in policies
    )


def test_registry_scans_on_push_and_expires_old_images():
    (repository,) = resources("registry", "AWS::ECR::Repository").values()
    assert repository["ImageScanningConfiguration"] == {"ScanOnPush": True}
    assert repository["ImageTagMutability"] == "IMMUTABLE"
    policy = yaml.safe_load(
        repository["LifecyclePolicy"]["LifecyclePolicyText"]["Fn::Sub"].replace("${ImagesToKeep}", "30")
    )
    assert [rule["action"]["type"] for rule in policy["rules"]] == ["expire", "expire"]


def test_runs_are_tasks_of_their_own_definition_not_services():
    definitions = resources("services", "AWS::ECS::TaskDefinition")
    run = definitions["RunTaskDefinition"]
    assert run["Family"] == {"Fn::Sub": "${EnvironmentName}-run"}
    assert [container["Name"] for container in run["ContainerDefinitions"]] == ["run"]  # dagster.yaml
    assert "Command" not in run["ContainerDefinitions"][0]  # the launcher sets it per run
    services = resources("services", "AWS::ECS::Service")
    assert {props["ServiceName"] for props in services.values()} == {
        "dagster-webserver",
        "dagster-daemon",
        "metabase",
    }
    assert all(props["TaskDefinition"] != {"Ref": "RunTaskDefinition"} for props in services.values())
    daemon = next(props for props in services.values() if props["ServiceName"] == "dagster-daemon")
    assert daemon["DeploymentConfiguration"]["MaximumPercent"] == 100  # never two daemons


@pytest.mark.parametrize("definition", ["DaemonTaskDefinition", "WebserverTaskDefinition"])
def test_the_daemon_launches_the_run_definitions_own_revision(definition):
    """Issue 11, item 2: a new run revision changes the daemon's definition, so ECS redeploys it."""
    environment = {variable["Name"]: variable["Value"] for variable in container(definition)["Environment"]}
    assert environment["DAGSTER_RUN_TASK_DEFINITION"] == {"Ref": "RunTaskDefinition"}  # ARN with revision
    rendered = re.sub(
        r"\$\{[A-Z_]+\}", "placeholder", (ROOT / "deploy" / "dagster" / "dagster.yaml").read_text()
    )
    launcher = yaml.safe_load(rendered)["run_launcher"]
    assert launcher["config"]["task_definition"] == {"env": "DAGSTER_RUN_TASK_DEFINITION"}
    # Nobody else may say which definition runs use (a family name would be resolved once, at start).
    names = {
        props["Name"]["Fn::Sub"]
        for stack in stack_order()
        for props in resources(stack, "AWS::SSM::Parameter").values()
    }
    assert not any(name.endswith("/DAGSTER_RUN_TASK_DEFINITION") for name in names)


def test_orchestrator_may_launch_only_run_tasks_and_pass_only_their_roles():
    roles = resources("cluster", "AWS::IAM::Role")
    statements = {
        statement["Sid"]: statement
        for policy in roles["OrchestratorTaskRole"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    }
    assert statements["LaunchRunTasks"]["Action"] == "ecs:RunTask"
    assert statements["LaunchRunTasks"]["Resource"]["Fn::Sub"].endswith(
        ":task-definition/${EnvironmentName}-run:*"
    )
    assert set(statements["WatchAndStopRunTasks"]["Action"]) == {"ecs:DescribeTasks", "ecs:StopTask"}
    # The sensor reads what was fetched last, and only that.
    assert statements["SensorReadsWhatWasFetchedLast"]["Action"] == "s3:GetObject"
    assert (
        statements["SensorReadsWhatWasFetchedLast"]["Resource"]["Fn::Sub"][0] == "${Bucket}/raw/manifest.json"
    )
    assert statements["PassRunRoles"]["Resource"] == [
        {"Fn::GetAtt": ["RunTaskRole", "Arn"]},
        {"Fn::GetAtt": ["RunExecutionRole", "Arn"]},
    ]
    every_action = {
        action
        for role in roles.values()
        for policy in role.get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    assert not {action for action in every_action if action.endswith("*")}
    # Run tasks touch their two buckets and nothing else.
    run_resources = [
        node
        for policy in roles["RunTaskRole"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Action"] != "ssm:GetParametersByPath"
        for node in walk(statement["Resource"])
        if isinstance(node, dict) and "Fn::ImportValue" in node
    ]
    buckets = {node["Fn::ImportValue"]["Fn::Sub"] for node in run_resources}
    assert buckets == {"${EnvironmentName}-RawBucketArn", "${EnvironmentName}-ReportsBucketArn"}


def environment_from_parameter_store() -> set[str]:
    names = set()
    for stack in stack_order():
        for props in resources(stack, "AWS::SSM::Parameter").values():
            match = ENV_PARAMETER.match(props["Name"]["Fn::Sub"])
            if match:
                names.add(match.group(1))
    return names


def container(definition: str) -> dict:
    (only,) = resources("services", "AWS::ECS::TaskDefinition")[definition]["ContainerDefinitions"]
    return only


def instance_variables() -> set[str]:
    """What the deployment dagster.yaml reads: `${NAME}` placeholders and `{env: NAME}` values."""
    text = (ROOT / "deploy" / "dagster" / "dagster.yaml").read_text()
    placeholder = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    names = set(placeholder.findall(code))
    for node in walk(yaml.safe_load(placeholder.sub("placeholder", code))):
        if isinstance(node, dict) and set(node) == {"env"}:
            names.add(node["env"])
    return names


@pytest.mark.parametrize(
    ("definition", "needed"),
    [
        ("WebserverTaskDefinition", instance_variables()),
        # The daemon also evaluates the schedule and the new-publication sensor (raw store's manifest).
        ("DaemonTaskDefinition", instance_variables() | {"COVID_AUTOMATION", "COVID_RAW_STORE"}),
        # The run worker gets the instance from the daemon and runs the pipeline's code.
        (
            "RunTaskDefinition",
            instance_variables()
            - {
                "DAGSTER_ECS_CLUSTER",
                "DAGSTER_RUN_TASK_DEFINITION",
                "DAGSTER_RUN_CAPACITY_PROVIDER",
                "DAGSTER_RUN_SUBNETS",
                "DAGSTER_RUN_SECURITY_GROUP",
            }
            | {"COVID_DATABASE_URL", "COVID_DATABASE_PASSWORD", "COVID_RAW_STORE", "COVID_REPORTS_STORE"},
        ),
    ],
    ids=["webserver", "daemon", "run"],
)
def test_dagster_containers_receive_every_variable_they_need(definition, needed):
    spec = container(definition)
    environment = {variable["Name"]: variable["Value"] for variable in spec["Environment"]}
    assert environment["SSM_ENV_PATH"] == {"Fn::Sub": "/${EnvironmentName}/env"}
    secrets = {secret["Name"] for secret in spec["Secrets"]}
    assert all("Secret" in str(secret["ValueFrom"]) for secret in spec["Secrets"])  # Secrets Manager
    missing = needed - environment_from_parameter_store() - secrets - set(environment)
    assert not missing, f"{definition} lacks {sorted(missing)}"
    # Passwords come from Secrets Manager, never from Parameter Store or a plain variable.
    assert not {name for name in environment_from_parameter_store() | set(environment) if "PASSWORD" in name}


def copied_into_image() -> list[tuple[str, str]]:
    """(sources, destination) of each COPY from the build context."""
    return re.findall(r"^COPY (?!--from)(.+) (\S+)$", DOCKERFILE.read_text(), re.MULTILINE)


def test_task_commands_use_files_the_image_contains():
    copied = copied_into_image()
    in_image = {
        destination.rstrip("/") + "/" + Path(source).name if destination.endswith("/") else destination
        for sources, destination in copied
        for source in sources.split()
    }
    commands = [
        " ".join(container(name).get("Command", []))
        for name in resources("services", "AWS::ECS::TaskDefinition")
        if name != "MetabaseTaskDefinition"
    ]
    mentioned = {path for command in commands for path in re.findall(r"/opt/dagster/\S+", command)}
    mentioned |= {container("WebserverTaskDefinition")["Environment"][1]["Value"]}
    assert mentioned and mentioned <= in_image, mentioned - in_image
    for sources, _ in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), source


# --- Image -----------------------------------------------------------------------------------------


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [tool("hadolint"), "--failure-threshold", "style", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_runs_as_a_non_root_user_from_a_pinned_slim_base():
    dockerfile = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base) for base in bases)
    users = re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")


def test_dockerignore_lets_in_exactly_what_the_dockerfile_copies():
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    copied = {source.rstrip("/") for sources, _ in copied_into_image() for source in sources.split()}
    assert copied == allowed


def test_image_pins_satisfy_the_project_dependencies():
    pins = {}
    for line in (ROOT / "docker" / "requirements.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dependency in map(Requirement, project["dependencies"]):
        name = dependency.name.lower()
        assert name in pins, f"{name} is not pinned: run docker/lock.sh"
        assert dependency.specifier.contains(pins[name], prereleases=True), (name, pins[name])


# --- Workflows and scripts ------------------------------------------------------------------------


def test_workflows_pass_actionlint():
    result = subprocess.run(
        [tool("actionlint"), *sorted(map(str, WORKFLOWS.glob("*.yml")))],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command():
    readme_command = 'python -m pip install -e ".[dev]" && python -m pytest'
    assert readme_command in (ROOT / "README.md").read_text()
    steps = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())["jobs"]["test"]["steps"]
    assert readme_command in [step.get("run") for step in steps]


def test_deploy_workflow_uses_oidc_and_no_stored_keys():
    text = (WORKFLOWS / "deploy.yml").read_text()
    workflow = yaml.safe_load(text)
    job = workflow["jobs"]["deploy"]
    assert job["needs"] == "test"
    assert job["permissions"]["id-token"] == "write"
    login = next(
        step
        for step in job["steps"]
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials")
    )
    assert set(login["with"]) >= {"role-to-assume", "aws-region"}
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    assert "github.sha" in text and "deploy/deploy.sh services" in text


@pytest.mark.parametrize("script", ["deploy/deploy.sh", "docker/lock.sh"])
def test_shell_scripts_pass_shellcheck(script):
    result = subprocess.run([tool("shellcheck"), str(ROOT / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


# --- Database initialisation ----------------------------------------------------------------------


@pytest.fixture
def fresh_server(tmp_path_factory):
    """A server of its own: the task creates cluster-wide roles the shared test server must not get."""
    from covid_pipeline.resources.embedded_postgres import start_server

    server = start_server(tmp_path_factory.mktemp("init-pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


def init_database_module():
    spec = importlib.util.spec_from_file_location("init_database", ROOT / "deploy" / "init_database.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_database_initialisation_gives_each_login_only_its_own_and_can_run_again(fresh_server, monkeypatch):
    """Issue 11, item 7, on a real PostgreSQL: run twice, then each login can do its job and no more."""
    info = psycopg.conninfo.conninfo_to_dict(fresh_server.get_uri())
    monkeypatch.setenv("PGHOST", info["host"])
    monkeypatch.setenv("PGUSER", info["user"])
    monkeypatch.setenv("PGDATABASE", "postgres")
    logins = init_database_module().LOGINS
    for login, variable in logins.items():
        monkeypatch.setenv(variable, f"password-of-{login}")
    script = [sys.executable, str(ROOT / "deploy" / "init_database.py")]
    for _ in range(2):
        result = subprocess.run(script, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr

    def connect(database: str, login: str) -> psycopg.Connection:
        return psycopg.connect(fresh_server.get_uri(database), user=login, autocommit=True)

    with psycopg.connect(fresh_server.get_uri(), autocommit=True) as conn:
        owners = dict(
            conn.execute(
                "SELECT datname, pg_get_userbyid(datdba) FROM pg_database WHERE datname = ANY(%s)",
                (["dagster", "covid", "metabase"],),
            ).fetchall()
        )
        assert owners["dagster"] == "dagster" and owners["metabase"] == "metabase"
        roles = {
            name: tuple(flags)
            for name, *flags in conn.execute(
                "SELECT rolname, rolcanlogin, rolsuper OR rolcreaterole OR rolcreatedb, "
                "rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = ANY(%s)",
                (list(logins),),
            ).fetchall()
        }
        assert roles == {login: (True, False, True) for login in logins}
        may_connect = {
            (login, database)
            for login in logins
            for database in ("dagster", "covid", "metabase")
            if conn.execute("SELECT has_database_privilege(%s, %s, 'CONNECT')", (login, database)).fetchone()[
                0
            ]
        }
        assert may_connect == {
            ("dagster", "dagster"),
            ("covid_pipeline", "covid"),
            ("metabase_reader", "covid"),
            ("metabase", "metabase"),
        }
    # Dagster's and Metabase's logins create their tables in their own database.
    for database in ("dagster", "metabase"):
        with connect(database, database) as conn:
            conn.execute("CREATE TABLE probe (id int)")
    # The pipeline's own migrations run as its login, then it builds a reporting relation as it does.
    from covid_pipeline.resources.warehouse import migrate

    migrate(fresh_server.get_uri("covid").replace(f"{info['user']}@", "covid_pipeline@", 1))
    with connect("covid", "covid_pipeline") as conn:
        owners = dict(conn.execute("SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace").fetchall())
        assert owners["covid"] == owners["reporting"] == "covid_pipeline"
        conn.execute("CREATE TABLE covid.cases_probe AS SELECT 1 AS n")
        conn.execute("CREATE MATERIALIZED VIEW reporting.probe AS SELECT n FROM covid.cases_probe")
    with connect("covid", "metabase_reader") as conn:
        assert conn.execute("SELECT n FROM reporting.probe").fetchall() == [(1,)]
        for statement in ("SELECT * FROM covid.cases_probe", "CREATE TABLE reporting.nope (id int)"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    # A third run (a rotation) changes nothing the pipeline built, and hands over what the master left.
    with psycopg.connect(fresh_server.get_uri("covid"), autocommit=True) as conn:
        conn.execute("CREATE TABLE covid.left_by_master (id int)")
    assert subprocess.run(script, capture_output=True, text=True).returncode == 0
    with connect("covid", "covid_pipeline") as conn:
        conn.execute("DROP TABLE covid.left_by_master")
        assert conn.execute("SELECT count(*) FROM reporting.probe").fetchone()[0] == 1


def test_database_initialisation_refuses_to_run_without_the_passwords(monkeypatch):
    monkeypatch.delenv("METABASE_PASSWORD", raising=False)
    result = subprocess.run(
        [sys.executable, str(ROOT / "deploy" / "init_database.py")], capture_output=True, text=True
    )
    assert result.returncode != 0 and "METABASE_PASSWORD" in result.stderr
