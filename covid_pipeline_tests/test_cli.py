"""The `covid-pipeline` command as a user runs it: in its own process, on embedded defaults or a given URL."""

import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from covid_pipeline.assets.reporting import READS
from covid_pipeline.cli import sample_sources
from covid_pipeline.resources.warehouse import WarehouseResource
from covid_pipeline_tests.helpers.registry import read_records


def can_cut_the_network() -> bool:
    """Whether a command can run in a network namespace of its own (root, or user namespaces allowed)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode == 0


# A command with no network but its own loopback (Dagster's processes talk over it), as on a laptop offline.
OFFLINE = (
    ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"'] if can_cut_the_network() else []
)


def covid_pipeline(*args: str, env: dict, offline: bool = False) -> subprocess.CompletedProcess:
    user = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # the default instance unless given
    return subprocess.run(
        [
            *(OFFLINE if offline else []),
            sys.executable,
            "-m",
            "covid_pipeline",
            *args,
        ],  # the README's command
        env={**user, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_demo_runs_the_whole_graph_on_the_bundled_sample_with_zero_set_up(tmp_path, monkeypatch):
    home = {"COVID_HOME": str(tmp_path / "home")}
    demo = covid_pipeline("demo", env=home, offline=True)  # no network needed once installed
    assert demo.returncode == 0, demo.stderr[-3000:]
    # the tables' counts, against a recount of the sample's files
    sample = sample_sources()
    case_ids = {r["id_evento_caso"] for r in read_records(Path(sample["COVID_CASES_URL"]))}
    with open(sample["COVID_PROVINCES_URL"], encoding="utf-8-sig", newline="") as handle:
        provinces = sum(1 for _ in csv.DictReader(handle))
    assert re.search(rf"^  covid\.cases +{len(case_ids):,} rows$", demo.stdout, re.MULTILINE), demo.stdout
    assert re.search(rf"^  covid\.provinces +{provinces} rows$", demo.stdout, re.MULTILINE), demo.stdout
    # a step that builds several tables sums them
    assert re.search(
        rf"^  ok +reporting_marts +\d+\.\d s  {len(READS)} tables, [\d,]+ rows$", demo.stdout, re.MULTILINE
    )
    # one compact line per step, not Dagster's DEBUG stream; then what to do next
    assert re.search(
        rf"^  ok +cleaned_cases +\d+\.\d s  {len(case_ids):,} rows$", demo.stdout, re.MULTILINE
    ), demo.stdout
    assert "DEBUG" not in demo.stdout + demo.stderr
    assert f"Report: {tmp_path / 'home' / 'reports' / 'latest.html'}" in demo.stdout
    assert "python -m covid_pipeline dev" in demo.stdout and "python -m covid_pipeline psql" in demo.stdout
    # the run is in the persistent instance at the default path, for the UI to show
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    with DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS and run.run_id[:8] in demo.stdout
        # Dagster's own output for the run, kept beside the instance
        assert (tmp_path / "home" / "dagster" / "demo-logs" / f"{run.run_id[:8]}.log").stat().st_size > 0
        cases = instance.get_latest_materialization_event(AssetKey("cleaned_cases"))
        assert cases.run_id == run.run_id
        assert cases.asset_materialization.metadata["dagster/row_count"].value == len(case_ids)

    # db-url's promise: the embedded server stays up for other programs, whatever the pipeline runs next
    url = covid_pipeline("db-url", env=home).stdout.strip()
    with psycopg.connect(url, autocommit=True) as other_program:
        assert other_program.execute("SELECT count(*) FROM covid.provinces").fetchone() == (provinces,)
        count = covid_pipeline("psql", "-Atc", "SELECT sum(notified) FROM covid.daily_aggregates", env=home)
        assert count.returncode == 0, count.stderr
        assert count.stdout.strip() == str(len(case_ids))
        assert other_program.execute("SELECT 1").fetchone() == (1,)
        # a second demo on the same home is a second run; the registry has not changed, and it says so
        again = covid_pipeline("demo", env=home)
        assert again.returncode == 0, again.stderr[-3000:]
        assert re.search(
            rf"^  ok +cleaned_cases +\d+\.\d s  {len(case_ids):,} rows, unchanged \(the file of the last load\)$",
            again.stdout,
            re.MULTILINE,
        ), again.stdout
        assert other_program.execute("SELECT count(*) FROM covid.cases").fetchone() == (len(case_ids),)
        with DagsterInstance.get() as instance:
            assert [run.status for run in instance.get_runs()] == [DagsterRunStatus.SUCCESS] * 2
        stopped = covid_pipeline("stop", env=home)
        assert stopped.returncode == 0 and "stopped the embedded server" in stopped.stdout, stopped
        with pytest.raises(psycopg.OperationalError):
            other_program.execute("SELECT 1")


def test_a_failed_demo_prints_its_step_lines_and_one_reason_naming_the_setting(tmp_path):
    env = {"COVID_HOME": str(tmp_path / "home"), "COVID_CASES_URL": str(tmp_path / "Covid19Casos.zp")}
    demo = covid_pipeline("demo", env=env)
    assert demo.returncode == 1
    assert "Traceback" not in demo.stdout + demo.stderr and "ERROR" not in demo.stdout + demo.stderr
    assert demo.stdout.splitlines()[1:] == ["  FAILED raw_csv_s3"]
    assert demo.stderr.splitlines() == [
        f"covid-pipeline demo: raw_csv_s3 failed: cases: {tmp_path / 'Covid19Casos.zp'} does not exist "
        "(check COVID_CASES_URL)"
    ]
    # `--verbose` brings back Dagster's every event, the failure's among them
    verbose = covid_pipeline("demo", "--verbose", env=env)
    assert verbose.returncode == 1
    assert "STEP_FAILURE" in verbose.stderr and "RUN_FAILURE" in verbose.stderr
    assert "  FAILED " not in verbose.stdout
    stop_embedded(env)


def stop_embedded(env: dict) -> None:
    if (Path(env["COVID_HOME"]) / "pgdata").exists():
        assert covid_pipeline("stop", env=env).returncode == 0


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("COVID_AUTOMATION", "maybe", "is not a yes/no value: write true/false, yes/no, on/off or 1/0."),
        ("COVID_RAW_STORE", "s3//bucket/x", "looks like a mistyped URL: write s3://bucket/prefix for S3"),
        ("COVID_REPORTS_STORE", "s3:/bucket", "looks like a mistyped URL: write s3://bucket/prefix for S3"),
        ("COVID_RAW_STORE", "https://example.org/raw", "is a URL the stores do not take"),
        ("COVID_MAX_ROW_DROP", "10%", "is not a number"),
    ],
)
@pytest.mark.parametrize("command", ["demo", "dev"])
def test_a_bad_setting_is_refused_in_one_line_naming_the_variable(command, variable, value, reason, tmp_path):
    env = {"COVID_HOME": str(tmp_path / "home"), variable: value}
    refused = subprocess.run(
        [sys.executable, "-m", "covid_pipeline", command, *(["--port", "0"] if command == "dev" else [])],
        env={k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"covid-pipeline {command}: {variable}={value!r} {reason}"), line
    assert "Dagster UI at" not in refused.stdout  # dev did not start
    assert not (tmp_path / "s3").exists()  # no folder made of a mistyped URL


def test_the_help_describes_every_command_and_reaches_psqls_own():
    top = covid_pipeline("--help", env={})
    assert top.returncode == 0 and "`" not in top.stdout
    for command in ("demo", "dev", "db-url", "dagster-home", "psql", "stop"):
        shown = covid_pipeline(command, "--help", env={})
        assert shown.returncode == 0, shown.stderr
        usage, description = shown.stdout.split("\n\n")[:2]
        assert usage.startswith(f"usage: covid-pipeline {command}") and len(description) > 60, shown.stdout
    dev = covid_pipeline("dev", "--help", env={}).stdout
    assert re.search(r"--port PORT +port the UI listens on \(default: 3000\)", dev), dev
    assert "(default: 127.0.0.1)" in " ".join(dev.split())
    assert "covid-pipeline psql -- --help" in covid_pipeline("psql", "--help", env={}).stdout


def test_psqls_own_help_is_reached_after_a_double_dash(tmp_path):
    env = {"COVID_HOME": str(tmp_path / "home")}
    shown = covid_pipeline("psql", "--", "--help", env=env)
    assert shown.returncode == 0 and "psql is the PostgreSQL interactive terminal." in shown.stdout
    stop_embedded(env)


def test_a_configured_database_url_is_used_not_the_embedded_server(database_url, tmp_path):
    env = {"COVID_DATABASE_URL": database_url, "COVID_HOME": str(tmp_path / "home")}
    printed = covid_pipeline("db-url", env=env)
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout.strip() == database_url
    assert not (tmp_path / "home" / "pgdata").exists()
    # with a password, the URL the command prints is the one runs connect to (the warehouse resource's)
    env["COVID_DATABASE_PASSWORD"] = "s3cret"
    printed = covid_pipeline("db-url", env=env)
    resource = WarehouseResource(database_url=database_url, database_password="s3cret")
    assert "password=s3cret" in printed.stdout
    assert printed.stdout.strip() == resource.url


@pytest.mark.parametrize("command", ["db-url", "psql"])
def test_a_configured_database_that_does_not_answer_is_named_in_one_line_not_a_traceback(command, tmp_path):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = {"COVID_DATABASE_URL": f"postgresql://someone@127.0.0.1:{port}/covid", "COVID_HOME": str(tmp_path)}
    printed = covid_pipeline(command, env=env)
    assert printed.returncode == 1
    assert "Traceback" not in printed.stderr
    assert printed.stderr.startswith("covid-pipeline: the warehouse did not answer (COVID_DATABASE_URL)")
    assert f'"127.0.0.1", port {port} failed: Connection refused' in printed.stderr


@pytest.mark.parametrize("command", ["db-url", "psql"])
def test_a_login_that_may_not_create_the_tables_is_named_in_one_line_not_a_traceback(
    command, database_url, tmp_path
):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS covid_reader_only")
        conn.execute("CREATE ROLE covid_reader_only LOGIN")
    reader = psycopg.conninfo.make_conninfo(database_url, user="covid_reader_only")
    try:
        printed = covid_pipeline(command, env={"COVID_DATABASE_URL": reader, "COVID_HOME": str(tmp_path)})
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP ROLE covid_reader_only")
    assert printed.returncode == 1 and "Traceback" not in printed.stderr
    [line] = printed.stderr.splitlines()
    assert line.startswith(
        "covid-pipeline: the login of COVID_DATABASE_URL may not create the warehouse's tables "
        "(permission denied for database"
    ), line


def test_unknown_arguments_are_refused():
    result = covid_pipeline("demo", "--fast", env={})
    assert result.returncode == 2 and "unrecognized arguments: --fast" in result.stderr


@pytest.mark.slow
def test_a_run_whose_process_was_killed_is_marked_failed_and_the_demo_runs_after_it(tmp_path, monkeypatch):
    """`dagster asset materialize` killed mid-run leaves its run STARTED, which would hold the queue (one run
    at a time) forever: the next demo marks it failed, then runs."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | sample_sources()
    env |= {"COVID_HOME": str(home), "DAGSTER_HOME": str(home / "dagster")}
    assert covid_pipeline("dagster-home", env=env).returncode == 0
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    materialize = subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "covid_pipeline.definitions"]
        + ["--select", "*"],
        env=env,
        cwd=home / "dagster",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its helpers (Dagster's log tailers) are cleared with it afterwards
    )
    try:
        with DagsterInstance.get() as instance:
            deadline = time.monotonic() + 120
            while not instance.get_runs() or instance.get_runs()[0].status != DagsterRunStatus.STARTED:
                assert time.monotonic() < deadline and materialize.poll() is None, "the run never started"
                time.sleep(0.1)
            materialize.kill()
            materialize.wait()
            [killed] = instance.get_runs()
            assert killed.status == DagsterRunStatus.STARTED
    finally:
        materialize.kill()
        materialize.wait()
        with contextlib.suppress(ProcessLookupError):  # what the killed process left running
            os.killpg(materialize.pid, signal.SIGKILL)

    demo = covid_pipeline("demo", env={"COVID_HOME": str(home)})
    assert demo.returncode == 0, demo.stdout + demo.stderr[-3000:]
    assert f"  run {killed.run_id[:8]} had lost its process (killed?): marked failed" in demo.stdout
    with DagsterInstance.get() as instance:
        demo_run, killed_run = instance.get_runs()
        assert (demo_run.status, killed_run.status) == (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE)
    stop_embedded({"COVID_HOME": str(home)})
