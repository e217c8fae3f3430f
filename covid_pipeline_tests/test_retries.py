"""Retries at the graph level: a lost database connection in cleaned_cases is retried and the run succeeds;
bad input is never retried."""

import os
import subprocess
import sys
import threading

import psycopg
import pytest
from dagster import DagsterEventType

from covid_pipeline.assets.cases import retry_delay_seconds
from covid_pipeline.cli import sample_sources
from covid_pipeline.resources.quality import QualityResource, SettingError
from covid_pipeline_tests.helpers.registry import (
    REAL_SAMPLE,
    read_records,
    row,
    write_large_registry,
    write_registry,
)
from covid_pipeline_tests.helpers.warehouse import copying_backend, failure_of, query, run_graph

SAMPLE = sample_sources()


def retries_of(result, step: str) -> int:
    return sum(
        e.event_type == DagsterEventType.STEP_UP_FOR_RETRY and e.step_key == step for e in result.all_events
    )


def test_a_connection_lost_mid_copy_is_retried_and_the_run_succeeds(sample_copy, tmp_path):
    large = write_large_registry(tmp_path / "Covid19Casos.csv", copies=12)
    terminated = []

    def terminate_the_first_copy():
        pid = copying_backend(sample_copy)
        with psycopg.connect(sample_copy, autocommit=True) as admin:
            terminated.append(admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0])

    killer = threading.Thread(target=terminate_the_first_copy)
    killer.start()
    # twelve times the sample: growth the default limit (COVID_MAX_ROW_GROWTH) would refuse
    relaxed = QualityResource(max_row_growth=1000)
    result = run_graph(sample_copy, tmp_path, cases=large, quality=relaxed)
    killer.join(60)
    assert terminated == [True]
    assert result.success
    assert retries_of(result, "cleaned_cases") == 1
    rows = len(read_records(large))
    assert query(sample_copy, "SELECT count(*) FROM covid.cases") == [(rows,)]
    assert query(sample_copy, "SELECT sum(notified) FROM covid.daily_aggregates") == [(rows,)]
    assert query(sample_copy, "SELECT count(*) FROM covid.loads") == [(2,)]  # the sample's, and this one


@pytest.mark.parametrize("bad_input", ["drifted_header", "refused_by_the_gate"])
def test_bad_input_is_not_retried(sample_copy, tmp_path, bad_input):
    rows = [row(id_evento_caso=str(i)) for i in range(1, 101)]
    if bad_input == "drifted_header":
        bad = write_registry(tmp_path / "Covid19Casos.csv", rows, header=["id", *rows[0]][:25])
    else:  # far fewer cases than the previous load
        bad = write_registry(tmp_path / "Covid19Casos.csv", rows)
    result = run_graph(sample_copy, tmp_path, cases=bad, raise_on_error=False)
    step, description = failure_of(result)
    assert step == "cleaned_cases" and "covid.cases was left as it was" in description
    assert retries_of(result, "cleaned_cases") == 0
    assert query(sample_copy, "SELECT count(*) FROM covid.cases") == [(len(read_records(REAL_SAMPLE)),)]


def test_a_bad_retry_delay_is_refused_naming_the_variable():
    """Read when the definitions load: the error names the setting, not a bare float() traceback."""
    loaded = subprocess.run(
        [sys.executable, "-c", "import covid_pipeline.definitions"],
        env=os.environ | {"COVID_RETRY_DELAY_SECONDS": "15s"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode != 0
    assert "SettingError: COVID_RETRY_DELAY_SECONDS='15s' is not a number of seconds" in loaded.stderr


@pytest.mark.parametrize("value", ["-1", "inf", "nan"])
def test_a_negative_or_endless_retry_delay_is_refused_too(value, monkeypatch):
    monkeypatch.setenv("COVID_RETRY_DELAY_SECONDS", value)
    with pytest.raises(
        SettingError, match=rf"COVID_RETRY_DELAY_SECONDS={value!r} is not a number of seconds"
    ):
        retry_delay_seconds()
