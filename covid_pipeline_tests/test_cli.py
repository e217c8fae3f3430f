"""The `covid-pipeline` command as a user runs it: in its own process, on embedded defaults or a given URL."""

import csv
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from covid_pipeline.assets.reporting import READS
from covid_pipeline.cli import sample_sources
from covid_pipeline.resources.warehouse import WarehouseResource
from covid_pipeline_tests.helpers.registry import read_records


def covid_pipeline(*args: str, env: dict) -> subprocess.CompletedProcess:
    user = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # the default instance unless given
    return subprocess.run(
        [sys.executable, "-m", "covid_pipeline", *args],  # the README's command
        env={**user, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_demo_runs_the_whole_graph_on_the_bundled_sample_with_zero_set_up(tmp_path, monkeypatch):
    home = {"COVID_HOME": str(tmp_path / "home")}
    demo = covid_pipeline("demo", env=home)
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
        cases = instance.get_latest_materialization_event(AssetKey("cleaned_cases"))
        assert cases.run_id == run.run_id
        assert cases.asset_materialization.metadata["dagster/row_count"].value == len(case_ids)
    # `--verbose` brings back Dagster's event stream; a second demo on the same home is a second run
    verbose = covid_pipeline("demo", "--verbose", env=home)
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert "STEP_SUCCESS" in verbose.stderr and "  ok " not in verbose.stdout
    with DagsterInstance.get() as instance:
        assert [run.status for run in instance.get_runs()] == [DagsterRunStatus.SUCCESS] * 2
    # the embedded database outlives the command, and psql (shipped with pgserver) reaches it
    count = covid_pipeline("psql", "-Atc", "SELECT sum(notified) FROM covid.daily_aggregates", env=home)
    assert count.returncode == 0, count.stderr
    assert count.stdout.strip() == str(len(case_ids))
    url = covid_pipeline("db-url", env=home).stdout.strip()
    with psycopg.connect(url) as conn:  # still up after db-url exited
        assert conn.execute("SELECT count(*) FROM covid.provinces").fetchone() == (provinces,)
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import pgserver; pgserver.get_server(__import__('sys').argv[1]).cleanup()",
            str(tmp_path / "home" / "pgdata"),
        ],
        check=True,
    )


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


def test_unknown_arguments_are_refused():
    result = covid_pipeline("demo", "--fast", env={})
    assert result.returncode == 2 and "unrecognized arguments: --fast" in result.stderr
