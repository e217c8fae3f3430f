"""The `covid-pipeline` command as a user runs it: in its own process, on embedded defaults or a given URL."""

import os
import re
import subprocess
import sys

import psycopg
from dagster import AssetKey, DagsterInstance, DagsterRunStatus


def covid_pipeline(*args: str, env: dict) -> subprocess.CompletedProcess:
    user = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # the default instance unless given
    return subprocess.run(
        [sys.executable, "-m", "covid_pipeline", *args],  # the README's command
        env={**user, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_runs_the_whole_graph_on_the_bundled_sample_with_zero_set_up(tmp_path, monkeypatch):
    home = {"COVID_HOME": str(tmp_path / "home")}
    demo = covid_pipeline("demo", env=home)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "covid.cases                  10,075 rows" in demo.stdout
    assert "covid.provinces                  24 rows" in demo.stdout
    # one compact line per step, not Dagster's DEBUG stream; then what to do next
    assert re.search(r"^  ok +cleaned_cases +\d+\.\d s  10,075 rows$", demo.stdout, re.MULTILINE), demo.stdout
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
        assert cases.asset_materialization.metadata["dagster/row_count"].value == 10_075
    # the embedded database outlives the command, and psql (shipped with pgserver) reaches it
    count = covid_pipeline("psql", "-Atc", "SELECT sum(notified) FROM covid.daily_aggregates", env=home)
    assert count.returncode == 0, count.stderr
    assert count.stdout.strip() == "10075"
    url = covid_pipeline("db-url", env=home).stdout.strip()
    with psycopg.connect(url) as conn:  # still up after db-url exited
        assert conn.execute("SELECT count(*) FROM covid.provinces").fetchone() == (24,)
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


def test_unknown_arguments_are_refused():
    result = covid_pipeline("demo", "--fast", env={})
    assert result.returncode == 2 and "unrecognized arguments: --fast" in result.stderr


def test_demo_verbose_brings_back_dagsters_event_stream(tmp_path, database_url):
    env = {"COVID_HOME": str(tmp_path / "home"), "COVID_DATABASE_URL": database_url}
    demo = covid_pipeline("demo", "--verbose", env=env)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "STEP_SUCCESS" in demo.stderr and "  ok " not in demo.stdout
