"""The Dagster UI as a newcomer opens it: `covid-pipeline dev` serves the sample, and a run launched the way
the UI's "Materialize all" launches it (GraphQL over HTTP) succeeds; `dg` works on the project."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus, in_process_executor

from covid_pipeline.checks.cases import CASES_CHECKS
from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.helpers.dagster_ui import (
    graphql,
    materialize_all,
    reexecute_all,
    runs_of_job,
    start_dev,
    stop,
    wait_for_graphql,
    wait_for_run,
)
from covid_pipeline_tests.helpers.registry import count_independently

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_CASES = count_independently(Path(sample_sources()["COVID_CASES_URL"]))["notified"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def user_env(home: Path) -> dict:
    """A user's environment: nothing but COVID_HOME set (no DAGSTER_HOME, no COVID_*_URL)."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME" and not k.startswith("COVID_")}
    return env | {"COVID_HOME": str(home)}


def stop_embedded_postgres(home: Path) -> None:
    subprocess.run([sys.executable, "-m", "covid_pipeline", "stop"], env=user_env(home), check=True)


def printed_by(command: str, env: dict) -> str:
    """What `python -m covid_pipeline <command>` prints (db-url, dagster-home)."""
    done = subprocess.run(
        [sys.executable, "-m", "covid_pipeline", command], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def cases_in_warehouse(home: Path) -> int:
    with psycopg.connect(printed_by("db-url", user_env(home))) as conn:
        return conn.execute("SELECT count(*) FROM covid.cases").fetchone()[0]


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    yield home
    if (home / "pgdata").exists():
        stop_embedded_postgres(home)


def test_the_executor_is_chosen_in_code_for_every_way_the_graph_runs():
    from covid_pipeline.definitions import defs

    assert defs.executor is in_process_executor
    assert defs.resolve_job_def("refresh_everything").executor_def is in_process_executor


def dg(*args: str, env: dict) -> subprocess.CompletedProcess:
    """Dagster's `dg` CLI, run in the checkout as a developer runs it (it reads [tool.dg] in pyproject.toml),
    on the instance of `covid-pipeline dagster-home` (without DAGSTER_HOME, Dagster keeps its state and
    telemetry in ~/.dagster: the user's home, which the tests leave alone)."""
    installed = Path(sys.executable).parent / "dg"
    command = [str(installed)] if installed.exists() else [sys.executable, "-m", "dagster_dg_cli.cli"]
    env = env | {"DAGSTER_HOME": env.get("DAGSTER_HOME") or printed_by("dagster-home", env)}
    return subprocess.run(
        [*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def test_dg_as_the_suite_runs_it_writes_nothing_in_the_users_home(home, tmp_path):
    user_home = tmp_path / "user"
    user_home.mkdir()
    checked = dg("check", "defs", env=user_env(home) | {"HOME": str(user_home)})
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert list(user_home.rglob("*")) == []


RUNS = "{ runsOrError { ... on Runs { results { runId status } } } }"


@pytest.mark.slow
def test_dg_and_the_dev_ui_share_one_instance_and_each_runs_the_whole_graph_on_the_sample(
    home, tmp_path, monkeypatch
):
    """`dg check defs` and `dg launch --assets '*'` as a developer runs them, then `covid-pipeline dev` on the
    same home: the UI shows dg's run, and a run launched as "Materialize all" launches it succeeds."""
    env = user_env(home)
    checked = dg("check", "defs", env=env)
    assert checked.returncode == 0, checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr

    # as the README says: the instance of `covid-pipeline dagster-home`, the sample's sources
    dagster_home = printed_by("dagster-home", env)
    assert Path(dagster_home) == home / "dagster"
    assert (home / "dagster" / "dagster.yaml").read_text() == (
        ROOT / "covid_pipeline" / "dagster.yaml"
    ).read_text()
    launched = dg("launch", "--assets", "*", env=env | sample_sources() | {"DAGSTER_HOME": dagster_home})
    assert launched.returncode == 0, launched.stderr[-3000:]
    monkeypatch.setenv("DAGSTER_HOME", dagster_home)
    with DagsterInstance.get() as instance:
        [dg_run] = instance.get_runs()
        assert dg_run.status == DagsterRunStatus.SUCCESS
        assert instance.get_latest_materialization_event(AssetKey("report")).run_id == dg_run.run_id
        evaluations = [
            entry.dagster_event.event_specific_data
            for entry in instance.all_logs(dg_run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
        ]
    assert {e.check_name for e in evaluations} == {
        *CASES_CHECKS,
        "totals_match_cases",
        "rules_match",
        "plausible_notification_delays",
    }
    assert all(e.passed for e in evaluations)

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    elsewhere = tmp_path / "elsewhere"  # dev works from any folder, not only the checkout
    elsewhere.mkdir()
    dev = start_dev(user_env(home), port, tmp_path / "dev.log", cwd=elsewhere)
    try:
        wait_for_graphql(base_url, dev)
        # one instance: the UI lists the run dg launched
        shown = graphql(base_url, RUNS)["runsOrError"]["results"]
        assert [(r["runId"], r["status"]) for r in shown] == [(dg_run.run_id, "SUCCESS")]
        run_id = materialize_all(base_url)
        run = wait_for_run(base_url, run_id)
        assert run["status"] == "SUCCESS", (tmp_path / "dev.log").read_text()[-5000:]
    finally:
        stopped_cleanly = stop(dev)
    assert stopped_cleanly  # Ctrl-C ends webserver, daemon and code servers: nothing is left behind
    # the run went into the instance under COVID_HOME, on the sample, into the embedded warehouse
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.SUCCESS
        materialization = instance.get_latest_materialization_event(AssetKey("cleaned_cases"))
        assert materialization.run_id == run_id
        starts = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
        evaluations = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    # the executor set in Definitions: every step in the run worker's one process, one after the other,
    # and the checks on covid.cases in one step of their own
    assert len({entry.dagster_event.pid for entry in starts}) == 1
    assert {
        e.step_key
        for e in evaluations
        if e.dagster_event.event_specific_data.asset_key == AssetKey("cleaned_cases")
    } == {"cases_checks"}
    assert len([e for e in evaluations if e.step_key == "cases_checks"]) == len(CASES_CHECKS)
    assert cases_in_warehouse(home) == SAMPLE_CASES


@pytest.mark.slow
def test_the_demos_run_is_a_run_of_the_job_that_the_ui_lists_and_re_executes(home, tmp_path, monkeypatch):
    """The demo's run, seen in the UI started afterwards on the same home: on the job's runs page, with its
    code location (the timeline groups runs by it), and "Re-execute all" runs it again to success."""
    demo = subprocess.run(
        [sys.executable, "-m", "covid_pipeline", "demo"], env=user_env(home), capture_output=True, text=True
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    with DagsterInstance.get() as instance:
        [demo_run] = instance.get_runs()

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    dev = start_dev(user_env(home), port, tmp_path / "dev.log")
    try:
        wait_for_graphql(base_url, dev)
        [listed] = runs_of_job(base_url, "refresh_everything")
        assert (listed["runId"], listed["status"]) == (demo_run.run_id, "SUCCESS")
        location = graphql(base_url, "{ assetNodes { repository { name location { name } } } }")[
            "assetNodes"
        ][0]
        assert listed["repositoryOrigin"] == {
            "repositoryLocationName": location["repository"]["location"]["name"],
            "repositoryName": location["repository"]["name"],
        }
        again = reexecute_all(base_url, demo_run.run_id)
        assert wait_for_run(base_url, again)["status"] == "SUCCESS", (tmp_path / "dev.log").read_text()[
            -5000:
        ]
        runs = runs_of_job(base_url, "refresh_everything")
        assert [(r["runId"], r["parentRunId"], r["status"]) for r in runs] == [
            (again, demo_run.run_id, "SUCCESS"),
            (demo_run.run_id, None, "SUCCESS"),
        ]
    finally:
        assert stop(dev)


def test_dev_on_a_busy_port_exits_at_once_naming_the_port(home, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        dev = subprocess.run(
            [sys.executable, "-m", "covid_pipeline", "dev", "--port", str(port)],
            env=user_env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert dev.returncode == 1 and time.monotonic() - started < 30
    assert dev.stderr.splitlines() == [
        f"covid-pipeline dev: port {port} on 127.0.0.1 is in use (another covid-pipeline dev?): "
        "stop that, or choose another port with --port."
    ]


def test_a_second_daemon_on_the_instance_is_refused_whatever_the_port(home, tmp_path):
    """Two daemons on one instance would both run the schedule and the sensor: a daemon already there
    (`dagster-daemon run`, another dev's, or one whose dev was killed) makes `dev` refuse to start."""
    env = user_env(home) | {"DAGSTER_HOME": printed_by("dagster-home", user_env(home))}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", "-m", "covid_pipeline.definitions"],
        env=env | sample_sources(),
        cwd=home / "dagster",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        dev = subprocess.run(
            [sys.executable, "-m", "covid_pipeline", "dev", "--port", str(free_port())],
            env=user_env(home),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        daemon.terminate()
        daemon.wait(timeout=60)
    assert dev.returncode == 1
    assert dev.stderr.splitlines() == [
        f"covid-pipeline dev: a Dagster daemon already serves the instance {home / 'dagster'} (pid "
        f"{daemon.pid}: another covid-pipeline dev, or a demo's run): stop it first."
    ]


# A run whose process ended without a word, as `kill -9` of `dagster asset materialize` leaves it: STARTED, by
# a pid that no longer runs.
ABANDONED_RUN = """
import os
from dagster import DagsterEvent, DagsterEventType, DagsterInstance
from covid_pipeline.definitions import defs

with DagsterInstance.get() as instance:
    job = defs.resolve_job_def("refresh_everything")
    run = instance.create_run_for_job(job_def=job)
    started = DagsterEvent(DagsterEventType.RUN_START.value, job_name=job.name, pid=os.getpid())
    instance.report_dagster_event(started, run.run_id)
    print(run.run_id, instance.get_run_by_id(run.run_id).status.value)
"""


def test_dev_marks_a_run_whose_process_is_gone_failed_and_serves_the_registry_it_is_given(
    home, tmp_path, monkeypatch
):
    """The queue (one run at a time) moves on when `dev` starts; and `COVID_CASES_URL=<your copy> ... dev`
    serves that copy instead of the sample."""
    mine = tmp_path / "data" / "Covid19Casos.zip"
    mine.parent.mkdir()
    mine.write_bytes(Path(sample_sources()["COVID_CASES_URL"]).read_bytes())
    env = user_env(home) | {"COVID_CASES_URL": str(mine)}
    dagster_home = printed_by("dagster-home", env)
    made = subprocess.run(
        [sys.executable, "-c", ABANDONED_RUN],
        env=env | {"DAGSTER_HOME": dagster_home},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    run_id, status = made.stdout.split()
    assert status == "STARTED"

    log = tmp_path / "dev.log"
    dev = start_dev(env, free_port(), log)
    try:
        deadline = time.monotonic() + 120
        while "Dagster UI at" not in log.read_text():
            assert dev.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
    finally:
        stop(dev)
    said = log.read_text()
    assert f"covid-pipeline dev: run {run_id[:8]} had lost its process (killed?): marked failed" in said
    assert f"(instance {dagster_home}; registry {mine})" in said
    monkeypatch.setenv("DAGSTER_HOME", dagster_home)
    with DagsterInstance.get() as instance:
        assert instance.get_run_by_id(run_id).status == DagsterRunStatus.FAILURE
