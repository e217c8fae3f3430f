"""Running the asset graph into a test database, copying and fingerprinting databases, and connecting
as a read-only Metabase login."""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from dagster import AssetSelection, DagsterInstance, materialize
from psycopg import sql

from covid_pipeline.cli import sample_sources
from covid_pipeline.definitions import all_assets, all_checks
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.sources import SourcesResource
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource

SAMPLE = sample_sources()


def without_report() -> AssetSelection:
    """Every asset but the report: drawing its eight charts costs half a run; only the report's tests need it."""
    return AssetSelection.all() - AssetSelection.assets("report")


def run_graph(
    database_url: str,
    folder: Path,
    *,
    cases: str | Path = SAMPLE["COVID_CASES_URL"],
    provinces: str | Path = SAMPLE["COVID_PROVINCES_URL"],
    departments: str | Path = SAMPLE["COVID_DEPARTMENTS_URL"],
    quality: QualityResource | None = None,
    selection=None,
    raise_on_error: bool = True,
    raw_store: str | Path | None = None,
    reports_store: str | Path | None = None,
    run_config: dict | None = None,
):
    """The one way the tests run the asset graph, as `dagster asset materialize` runs it: the definitions' assets
    and checks, in one process, into `database_url` ("" for the embedded server in $COVID_HOME).

    - sources: the bundled sample's, unless `cases`, `provinces` or `departments` (a path or a URL) is given;
    - quality: the thresholds (QualityResource's defaults unless given);
    - selection: every asset but the report unless given (the report's charts cost half a run);
    - stores: the raw files in `folder`/raw and the reports in `folder`/reports unless `raw_store` or
      `reports_store` is given (a folder, s3://bucket/prefix, or "" for the default under $COVID_HOME).
    A failed run raises unless `raise_on_error` is False; check results never do (read them with `checks_of`)."""
    resources = {
        "quality": quality or QualityResource(),
        "warehouse": WarehouseResource(database_url=database_url),
        "raw_store": StoreResource(location=str(Path(folder) / "raw" if raw_store is None else raw_store)),
        "reports_store": StoreResource(
            location=str(Path(folder) / "reports" if reports_store is None else reports_store)
        ),
        "sources": SourcesResource(
            cases_url=str(cases),
            provinces_url=str(provinces),
            departments_url=str(departments),
            backoff_seconds=0.01,
        ),
    }
    return materialize(
        [*all_assets, *all_checks],
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        selection=selection or without_report(),
        raise_on_error=raise_on_error,
        run_config=run_config,
    )


def checks_of(result) -> dict:
    """The run's check evaluations by check name."""
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def downstream_of(asset_name: str) -> set[str]:
    """Every asset that reads `asset_name`, directly or not (from the definitions Dagster loads)."""
    from covid_pipeline.definitions import defs

    graph = defs.resolve_asset_graph()
    [key] = [k for k in graph.get_all_asset_keys() if k.to_user_string() == asset_name]
    found, frontier = set(), [key]
    while frontier:
        children = {c.key for c in graph.get_children(graph.get(frontier.pop()))} - found
        found |= children
        frontier.extend(children)
    return {k.to_user_string() for k in found}


def failure_of(result):
    """(step key, what it says) of the run's one failed step: a Failure's description, else the error."""
    [failure] = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data
    return failure.step_key, data.user_failure_data.description if data.user_failure_data else str(data.error)


def refusal(result, step: str) -> str:
    """What the run's one failed step, `step`, says: it failed once, without a retry, in words for people (a
    Failure's description, never a traceback or a bare errno)."""
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == [step], [e.step_key for e in failures]
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    data = failures[0].step_failure_data
    assert data.user_failure_data is not None, data.error.to_string()
    message = data.user_failure_data.description
    assert "Traceback" not in message and "Errno" not in message, message
    return message


def metadata_of(result, asset_name):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset_name]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def query(url, statement, params=None):
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def new_database(server_url: str, template: str | None = None) -> str:
    """A fresh database on the server; a file-level copy of the database at URL `template` when given."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        source = psycopg.conninfo.conninfo_to_dict(template)["dbname"]
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(source))
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(statement)
    return server_url.replace("/postgres?", f"/{name}?")


def drop_database(server_url: str, url: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def fingerprint(url: str, relation: str) -> tuple:
    """(rows, md5 of every row's text): equal exactly when the relation holds the same content."""
    statement = sql.SQL("SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {} t").format(
        sql.SQL(relation)
    )
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchone()


def copying_backend(url: str, timeout: float = 60) -> int:
    """The pid of the backend that is in the middle of a COPY into this database, past its first thousand rows
    (the reference tables, with a few hundred, are never taken for the registry's load)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as watcher:
        while time.monotonic() < deadline:
            found = watcher.execute(
                "SELECT pid FROM pg_stat_progress_copy WHERE datname = current_database() "
                "AND command = 'COPY FROM' AND tuples_processed > 1000"
            ).fetchone()
            if found:
                return found[0]
            time.sleep(0.002)
    raise AssertionError("no COPY started")


@contextmanager
def metabase_login(database_url: str) -> Iterator[str]:
    """The URL of a fresh login role that is a member of metabase_reader (as the deployment creates it)."""
    role = f"metabase_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE metabase_reader").format(sql.Identifier(role)))
    try:
        yield psycopg.conninfo.make_conninfo(database_url, user=role)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
