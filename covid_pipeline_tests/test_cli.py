"""The `covid-pipeline` command as a user runs it: in its own process, on embedded defaults or a given URL."""

import os
import subprocess
import sys

import psycopg


def covid_pipeline(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "covid_pipeline", *args],  # the README's command
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_demo_runs_the_whole_graph_on_the_bundled_sample_with_zero_set_up(tmp_path):
    home = {"COVID_HOME": str(tmp_path / "home")}
    demo = covid_pipeline("demo", env=home)
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert "covid.cases                  10,075 rows" in demo.stdout
    assert "covid.provinces                  24 rows" in demo.stdout
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
