"""When the graph runs by itself: the schedule's time zone, the sensor's interval, COVID_AUTOMATION, and what
the sensor does with a server that says nothing about its files."""

import os
import subprocess
import sys

from dagster import SkipReason

from covid_pipeline.definitions import defs
from covid_pipeline.resources.sources import SourcesResource
from covid_pipeline_tests.helpers.registry import row, write_registry
from covid_pipeline_tests.test_sensor import evaluate


def test_the_schedule_runs_at_seven_in_buenos_aires_and_the_sensor_every_half_hour():
    schedule = defs.resolve_schedule_def("daily_refresh")
    assert (schedule.cron_schedule, schedule.execution_timezone) == (
        "0 7 * * *",
        "America/Argentina/Buenos_Aires",
    )
    assert defs.resolve_sensor_def("new_publication").minimum_interval_seconds == 30 * 60


# Run in a process of its own, as `dagster dev` or the daemon loads the code: the setting is read at import.
STATUSES = """
import importlib, os, sys
import covid_pipeline.automation, covid_pipeline.definitions
for setting in sys.argv[1:]:
    os.environ["COVID_AUTOMATION"] = setting
    importlib.reload(covid_pipeline.automation)
    defs = importlib.reload(covid_pipeline.definitions).defs
    print(setting or "unset", defs.resolve_schedule_def("daily_refresh").default_status.value,
          defs.resolve_sensor_def("new_publication").default_status.value)
"""


def test_covid_automation_takes_the_usual_yes_and_no_values():
    env = {k: v for k, v in os.environ.items() if k != "COVID_AUTOMATION"}
    done = subprocess.run(
        [sys.executable, "-c", STATUSES, "on", "ON", "yes", "true", "1", "", "off", "No", "false", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "on RUNNING RUNNING",
        "ON RUNNING RUNNING",
        "yes RUNNING RUNNING",
        "true RUNNING RUNNING",
        "1 RUNNING RUNNING",
        "unset STOPPED STOPPED",
        "off STOPPED STOPPED",
        "No STOPPED STOPPED",
        "false STOPPED STOPPED",
        "0 STOPPED STOPPED",
    ]


def test_a_server_that_says_nothing_about_its_files_is_skipped_with_the_reason(http_server, tmp_path):
    url = http_server.publish("Covid19Casos.zip", write_registry(tmp_path / "c.zip", [row()]).read_bytes())
    http_server.bare = True  # no ETag, no Last-Modified, no Content-Length
    result = evaluate(SourcesResource(cases_url=url), tmp_path / "raw")
    assert isinstance(result, SkipReason)
    assert result.skip_message.startswith(f"{url} gives no ETag, Last-Modified or size")
    assert "the daily schedule refreshes it" in result.skip_message
    assert [m for m, _, _ in http_server.requests] == ["HEAD"]  # it asked, and downloaded nothing
