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


def without_report() -> AssetSelection:
    """Every asset but the report: drawing its eight charts costs half a run; only the report's tests need it."""
    return AssetSelection.all() - AssetSelection.assets("report")


def run_graph(
    database_url,
    raw_location,
    cases_url,
    provinces_url,
    departments_url,
    quality=None,
    reports=None,
    selection=None,
    **kwargs,
):
    """Materialize every asset but the report (or `selection`) and their checks into `database_url`, raw files
    kept at `raw_location`."""
    resources = {
        "quality": quality or QualityResource(),
        "warehouse": WarehouseResource(database_url=database_url),
        "raw_store": StoreResource(location=str(raw_location)),
        "reports_store": StoreResource(location=reports or str(raw_location) + "-reports"),
        "sources": SourcesResource(
            cases_url=cases_url,
            provinces_url=provinces_url,
            departments_url=departments_url,
            backoff_seconds=0.01,
        ),
    }
    return materialize(
        [*all_assets, *all_checks],
        resources=resources,
        instance=DagsterInstance.ephemeral(),
        selection=selection or without_report(),
        **kwargs,
    )


def run_all_assets(
    database_url: str, folder: Path, cases_url: str | None = None, reports: str | None = None, selection=None
):
    """Materialize every asset but the report (or `selection`): the bundled sample's sources unless `cases_url`
    is given."""
    sources = sample_sources()
    result = run_graph(
        database_url,
        folder / "raw",
        cases_url or sources["COVID_CASES_URL"],
        sources["COVID_PROVINCES_URL"],
        sources["COVID_DEPARTMENTS_URL"],
        reports=reports or str(folder / "reports"),
        selection=selection,
    )
    assert result.success
    return result


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
