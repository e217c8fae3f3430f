"""Failures worded for the person running the pipeline: what went wrong, where, what was kept, what to do.

Bad input and unreachable sources are not bugs: the run fails with the message alone (no traceback as
the headline) and is not retried. A lost database connection is worth a retry (RetryPolicy on the asset).
"""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import Failure

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.resources.sources import DownloadError


class RawSourceMissing(RuntimeError):
    """The raw store does not hold a source yet: raw_csv_s3 has not been materialized."""


@contextmanager
def failures_for_people(kept: str, **metadata) -> Iterator[None]:
    """Turn the errors a user can act on into a Dagster Failure; `kept` says what was left intact."""
    try:
        yield
    except (SourceFormatError, DownloadError, RawSourceMissing) as exc:
        raise Failure(description=f"{exc}\n\n{kept}", metadata=metadata, allow_retries=False) from None
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise Failure(
            description=f"The database connection failed or was lost ({reason}).\n\n{kept} "
            "The step is retried; if it keeps failing, check that the database is up and COVID_DATABASE_URL.",
            metadata=metadata,
        ) from exc
