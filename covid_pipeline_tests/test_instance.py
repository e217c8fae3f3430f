"""The one local Dagster instance (instance.py, the packaged dagster.yaml): where it lives, which settings it
holds, and what Dagster reads from them: one run at a time, started within a second of being queued, run
monitoring that fails a run after 6 hours, no telemetry."""

import os
import sqlite3
import subprocess
import sys

from dagster import DagsterInstance

from covid_pipeline.instance import MARKER, SETTINGS, prepare_dagster_home


def dagster_home_command(env: dict) -> subprocess.CompletedProcess:
    """`covid-pipeline dagster-home`, as the README's `export DAGSTER_HOME=$(...)` runs it."""
    user = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "COVID_HOME")}
    return subprocess.run(
        [sys.executable, "-m", "covid_pipeline", "dagster-home"],
        env=user | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_the_instance_is_dagster_home_when_set_else_the_dagster_folder_of_covid_home(tmp_path):
    home = tmp_path / "covid-home"
    printed = dagster_home_command({"COVID_HOME": str(home)}).stdout.strip()
    assert printed == str(home / "dagster")  # created if needed, with the packaged settings
    assert (home / "dagster" / "dagster.yaml").read_text() == SETTINGS.read_text()
    elsewhere = tmp_path / "elsewhere"
    printed = dagster_home_command({"COVID_HOME": str(home), "DAGSTER_HOME": str(elsewhere)}).stdout.strip()
    assert printed == str(elsewhere) and (elsewhere / "dagster.yaml").is_file()


def test_the_packaged_settings_are_written_when_absent_updated_when_they_change_and_a_users_own_kept(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    settings = tmp_path / "dagster.yaml"
    assert prepare_dagster_home() == tmp_path and settings.read_text() == SETTINGS.read_text()
    # an older copy of the packaged file (it starts with the same first line) is brought up to date
    settings.write_text(f"{MARKER}\nrun_queue:\n  max_concurrent_runs: 4\n")
    prepare_dagster_home()
    assert settings.read_text() == SETTINGS.read_text()
    # a dagster.yaml of the user's own is theirs
    own = "# mine\nrun_queue:\n  max_concurrent_runs: 3\n"
    settings.write_text(own)
    prepare_dagster_home()
    assert settings.read_text() == own


def test_dagster_runs_one_run_at_a_time_fails_runs_past_6_hours_and_sends_no_telemetry(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    prepare_dagster_home()
    with DagsterInstance.get() as instance:
        queue = instance.run_coordinator
        assert queue.get_run_queue_config().max_concurrent_runs == 1
        assert queue.dequeue_interval_seconds == 1  # a run launched from the UI starts within a second
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == 6 * 60 * 60
        assert not instance.telemetry_enabled


def test_the_instance_databases_exist_once_its_home_is_prepared_so_commands_started_together_share_them(
    tmp_path,
):
    """Two commands that find no databases create them both, and SQLite's schema can end up stamped twice
    ("more than one head present"), breaking every later command. `dagster-home` (and demo, dev) create them
    first; commands started together afterwards only open them."""
    home = tmp_path / "covid-home"
    dagster_home_command({"COVID_HOME": str(home)})
    instance_home = home / "dagster"
    schedules = instance_home / "schedules" / "schedules.db"
    assert schedules.is_file() and (instance_home / "history" / "runs.db").is_file()
    env = {k: v for k, v in os.environ.items() if k != "COVID_HOME"} | {"DAGSTER_HOME": str(instance_home)}
    opening = "from dagster import DagsterInstance; DagsterInstance.get().get_runs()"
    together = [subprocess.Popen([sys.executable, "-c", opening], env=env) for _ in range(4)]
    assert [process.wait(timeout=120) for process in together] == [0] * 4
    with sqlite3.connect(schedules) as db:
        assert len(db.execute("select version_num from alembic_version").fetchall()) == 1
