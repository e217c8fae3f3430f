"""Every setting of docs/operations.md, read end to end: a process of its own imports covid_pipeline.definitions
with an environment as a deployment sets it (the variables the stacks write into Parameter Store and the run
task's secrets, which docker/entrypoint.py turns into environment variables), and the resources, the schedule,
the sensor and the load's retry policy carry exactly those values. With nothing set they carry the defaults
the settings table documents. Local and AWS differ only in these variables."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from covid_pipeline.resources.object_store import ObjectStore
from covid_pipeline_tests.helpers.templates import template

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"

# What the definitions carry for each setting, printed by a process that imports them as Dagster does.
CARRIED = """
import json
from covid_pipeline.definitions import defs

resources = {name: r.process_config_and_initialize() for name, r in defs.resources.items()}
sources, warehouse, quality = resources["sources"], resources["warehouse"], resources["quality"]
retry = defs.resolve_assets_def("cleaned_cases").op.retry_policy
carried = {
    "COVID_CASES_URL": sources.cases_url,
    "COVID_PROVINCES_URL": sources.provinces_url,
    "COVID_DEPARTMENTS_URL": sources.departments_url,
    "COVID_DATABASE_URL": warehouse.database_url,
    "COVID_DATABASE_PASSWORD": warehouse.database_password,
    "embedded data folder": str(warehouse.embedded_data_path),
    "COVID_RAW_STORE": resources["raw_store"].store().location,
    "COVID_REPORTS_STORE": resources["reports_store"].store().location,
    "COVID_AUTOMATION": [
        defs.resolve_schedule_def("daily_refresh").default_status.value,
        defs.resolve_sensor_def("new_publication").default_status.value,
    ],
    # the seconds Dagster waits before each retry of a lost connection, as it computes them during a run
    "COVID_RETRY_DELAY_SECONDS": [retry.calculate_delay(n) for n in range(1, retry.max_retries + 1)],
}
carried |= {f"COVID_{name.upper()}": getattr(quality, name) for name in type(quality).model_fields}
print(json.dumps(carried))
"""


def carried_by_the_definitions(env: dict) -> dict:
    loaded = subprocess.run(
        [sys.executable, "-c", CARRIED], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    return json.loads(loaded.stdout.splitlines()[-1])


def without_settings() -> dict:
    """This process's environment without any setting of the pipeline."""
    return {k: v for k, v in os.environ.items() if not k.startswith("COVID_") and k != "AWS_ENDPOINT_URL"}


def documented_settings() -> dict[str, str]:
    """The settings table of docs/operations.md: each variable and the text of its default."""
    section = OPERATIONS.read_text(encoding="utf-8").split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        names, default = line.split(" | ")[:2]
        names = re.findall(r"`([A-Z_]+)`", names)
        defaults = re.findall(r"`([^`]+)`", default)
        for position, name in enumerate(names):
            documented[name] = defaults[position] if len(defaults) == len(names) else default
    return documented


# A deployment's value for each setting (none of them the default), and what the definitions then carry.
DEPLOYMENT = {
    "COVID_CASES_URL": (
        "https://mirror.example.org/Covid19Casos.zip",
        "https://mirror.example.org/Covid19Casos.zip",
    ),
    "COVID_PROVINCES_URL": (
        "https://mirror.example.org/provincias.csv",
        "https://mirror.example.org/provincias.csv",
    ),
    "COVID_DEPARTMENTS_URL": (
        "file:///srv/georef/departamentos.csv",
        "file:///srv/georef/departamentos.csv",
    ),
    "COVID_DATABASE_URL": (
        "postgresql://pipeline@covid-master.abc.us-east-1.rds.amazonaws.com:5432/covid",
        "postgresql://pipeline@covid-master.abc.us-east-1.rds.amazonaws.com:5432/covid",
    ),
    "COVID_DATABASE_PASSWORD": ("from-secrets-manager", "from-secrets-manager"),
    "COVID_RAW_STORE": ("s3://covid-raw-123456789012/raw", "s3://covid-raw-123456789012/raw"),
    "COVID_REPORTS_STORE": (
        "s3://covid-reports-123456789012/reports",
        "s3://covid-reports-123456789012/reports",
    ),
    "COVID_AUTOMATION": ("on", ["RUNNING", "RUNNING"]),
    "COVID_RETRY_DELAY_SECONDS": ("7.5", [7.5, 15.0]),  # doubled for the second retry
    "COVID_MAX_ROW_DROP": ("0.2", 0.2),
    "COVID_MAX_ROW_GROWTH": ("3", 3.0),
    "COVID_MAX_REJECTED_SHARE": ("0.02", 0.02),
    "COVID_MAX_DUPLICATE_SHARE": ("0.07", 0.07),
    "COVID_MAX_EMPTY_SHARE": ("0.3", 0.3),
    "COVID_ALLOW_OLDER_PUBLICATION": ("yes", True),
    "COVID_FUTURE_DATE_TOLERANCE_DAYS": ("3", 3),
    "COVID_MAX_REFERENCE_ROW_DROP": ("0.5", 0.5),
    "COVID_MAX_REFERENCE_ROW_GROWTH": ("0.25", 0.25),
    "COVID_MAX_OUT_OF_RANGE_DATE_SHARE": ("0.01", 0.01),
    "COVID_MAX_UNKNOWN_PROVINCE_SHARE": ("0.02", 0.02),
    "COVID_MAX_UNMATCHED_DEPARTMENT_SHARE": ("0.5", 0.5),
    "COVID_EARLIEST_DATE": ("2019-12-01", "2019-12-01"),
}
# Documented settings no resource carries: COVID_HOME is where the defaults live (the test of the defaults
# follows it), AWS_ENDPOINT_URL is boto3's own.
NOT_CARRIED = {"COVID_HOME", "AWS_ENDPOINT_URL"}


def variables_the_deployment_sets() -> set[str]:
    """The pipeline's variables a deployment sets: Parameter Store entries under /<environment>/env/ that the
    stacks write, and the run task definition's own Environment and Secrets."""
    found = set()
    for stack in (ROOT / "deploy" / "cloudformation").glob("*.yaml"):
        text = stack.read_text(encoding="utf-8")
        found |= set(re.findall(r"/\$\{EnvironmentName\}/env/(COVID_[A-Z_]+)", text))
    run = template("services")["Resources"]["RunTaskDefinition"]["Properties"]
    [container] = run["ContainerDefinitions"]
    for entry in container.get("Environment", []) + container.get("Secrets", []):
        found.add(entry["Name"])
    return {name for name in found if name.startswith("COVID_")}


def test_every_documented_setting_is_one_the_definitions_read_or_a_stated_exception():
    assert set(documented_settings()) == set(DEPLOYMENT) | NOT_CARRIED


def test_a_deployments_settings_reach_every_resource_through_the_definitions(tmp_path):
    deployment = variables_the_deployment_sets()
    # the stacks set the warehouse, the stores and the automation; the rest keeps its default unless set
    assert {
        "COVID_DATABASE_URL",
        "COVID_DATABASE_PASSWORD",
        "COVID_RAW_STORE",
        "COVID_REPORTS_STORE",
    } <= deployment
    assert deployment <= set(DEPLOYMENT), deployment - set(DEPLOYMENT)
    env = without_settings() | {name: value for name, (value, _) in DEPLOYMENT.items()}
    carried = carried_by_the_definitions(env | {"COVID_HOME": str(tmp_path / "unused")})
    assert {name: carried[name] for name in DEPLOYMENT} == {
        name: expected for name, (_, expected) in DEPLOYMENT.items()
    }


def test_with_nothing_set_the_definitions_carry_the_documented_defaults(tmp_path):
    home = tmp_path / "home"
    carried = carried_by_the_definitions(without_settings() | {"COVID_HOME": str(home)})
    documented = documented_settings()
    # the sources: the official publications, as the table gives them
    for name in ("COVID_CASES_URL", "COVID_PROVINCES_URL", "COVID_DEPARTMENTS_URL"):
        assert carried[name] == documented[name], name
    # the warehouse and the stores: under $COVID_HOME
    assert "$COVID_HOME/pgdata" in documented["COVID_DATABASE_URL"]
    assert (carried["COVID_DATABASE_URL"], carried["embedded data folder"]) == ("", str(home / "pgdata"))
    assert carried["COVID_DATABASE_PASSWORD"] == ""
    for name, folder in (("COVID_RAW_STORE", "raw"), ("COVID_REPORTS_STORE", "reports")):
        assert documented[name] == f"$COVID_HOME/{folder}"
        assert carried[name] == str(home / folder)
    # automation off, the retry's delay and the thresholds as documented
    assert documented["COVID_AUTOMATION"].startswith("unset (off)")
    assert carried["COVID_AUTOMATION"] == ["STOPPED", "STOPPED"]
    delay = float(documented["COVID_RETRY_DELAY_SECONDS"])
    assert carried["COVID_RETRY_DELAY_SECONDS"] == [delay, 2 * delay]  # doubled for the second retry
    for name in set(DEPLOYMENT) - {
        "COVID_CASES_URL",
        "COVID_PROVINCES_URL",
        "COVID_DEPARTMENTS_URL",
        "COVID_DATABASE_URL",
        "COVID_DATABASE_PASSWORD",
        "COVID_RAW_STORE",
        "COVID_REPORTS_STORE",
        "COVID_AUTOMATION",
        "COVID_RETRY_DELAY_SECONDS",
    }:
        assert carried[name] == as_documented(documented[name], carried[name]), name


def as_documented(text: str, like):
    """A documented default read as the type of the value carried (`no` for a yes/no, `0.10`, a date)."""
    if isinstance(like, bool):
        return yaml.safe_load(text)
    return type(like)(text)


def test_without_covid_home_local_state_lives_in_the_users_home(tmp_path):
    """`~/.covid-pipeline` (a HOME of the test's own: the user's is left alone)."""
    env = without_settings() | {"HOME": str(tmp_path)}
    carried = carried_by_the_definitions(env)
    assert documented_settings()["COVID_HOME"] == "~/.covid-pipeline"
    assert carried["embedded data folder"] == str(tmp_path / ".covid-pipeline" / "pgdata")
    assert carried["COVID_RAW_STORE"] == str(tmp_path / ".covid-pipeline" / "raw")
    assert carried["COVID_REPORTS_STORE"] == str(tmp_path / ".covid-pipeline" / "reports")


def test_a_folder_named_like_a_url_is_taken_as_a_folder_when_written_with_dot_slash(tmp_path, monkeypatch):
    """`s3//bucket/x` is refused as a mistyped URL; `./s3//bucket/x` is the folder of that name."""
    stores = {"COVID_RAW_STORE": "./s3//bucket/x", "COVID_REPORTS_STORE": "./https:/reports"}
    carried = carried_by_the_definitions(without_settings() | {"COVID_HOME": str(tmp_path)} | stores)
    monkeypatch.chdir(tmp_path)
    for name, folder in (("COVID_RAW_STORE", "s3/bucket/x"), ("COVID_REPORTS_STORE", "https:/reports")):
        assert carried[name] == stores[name]
        ObjectStore(carried[name]).put_bytes(b"kept", "a/file")
        assert (tmp_path / folder / "a" / "file").read_bytes() == b"kept", name
