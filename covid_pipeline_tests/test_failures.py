"""What a failed step says (assets/failures.py), beyond the faults of the machine (test_environment_faults.py):
a step that fails after `cleaned_cases` replaced covid.cases says that its table is now behind the cases."""

import psycopg
import pytest
from dagster import Failure

from covid_pipeline.assets.failures import behind_cases, failures_for_people


def test_a_step_failing_after_the_load_says_its_table_is_behind_covid_cases(database_url):
    with (
        pytest.raises(Failure) as failure,
        failures_for_people(behind_cases("covid.daily_aggregates")),
        psycopg.connect(database_url) as conn,
    ):
        conn.execute("SELECT date '4714-11-24 BC' - 1")  # the DataError daily_aggregates met
    message = failure.value.description
    assert "covid.daily_aggregates was left as it was, built from the previous load" in message
    assert "covid.cases may already hold the new one" in message and "re-run" in message
    assert "out of range" in message and failure.value.allow_retries is False
