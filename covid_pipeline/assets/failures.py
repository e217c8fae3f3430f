"""Failures worded for the person running the pipeline: what went wrong, where, what was kept, what to do.

Bad input and unreachable sources are not bugs: the run fails with the message alone (no traceback as
the headline) and is not retried. A lost database connection is worth a retry (RetryPolicy on the asset).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import Failure

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.resources.object_store import StoreError
from covid_pipeline.resources.sources import DownloadError


class RawSourceMissing(RuntimeError):
    """The raw store does not hold a source yet: raw_csv_s3 has not been materialized."""


@contextmanager
def failures_for_people(kept: str, **metadata) -> Iterator[None]:
    """Turn the errors a user can act on into a Dagster Failure; `kept` says what was left intact."""
    try:
        yield
    except (SourceFormatError, DownloadError, RawSourceMissing, StoreError) as exc:
        raise Failure(description=f"{exc}\n\n{kept}", metadata=metadata, allow_retries=False) from None
    except psycopg.OperationalError as exc:
        raise Failure(
            description=f"The database connection failed or was lost ({_first_line(exc)}).\n\n{kept} "
            "The step is retried; if it keeps failing, check that the database is up and COVID_DATABASE_URL.",
            metadata=metadata,
        ) from exc
    except psycopg.Error as exc:
        # The same data would fail the same way again: no retry.
        raise Failure(
            description=f"The database refused the step ({type(exc).__name__}: {_first_line(exc)}).\n\n{kept}",
            metadata=metadata,
            allow_retries=False,
        ) from exc


def behind_cases(table: str) -> str:
    """What a failed step built from covid.cases leaves: its table from the previous load, out of step."""
    return (
        f"{table} was left as it was, built from the previous load, while covid.cases may already hold the "
        "new one (cleaned_cases ran earlier in this run): the two are out of step until this step succeeds. "
        "Fix the cause and re-run this step and the ones after it (e.g. dagster asset materialize "
        "--select 'cleaned_cases+') to bring them back in step."
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
