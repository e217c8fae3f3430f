"""Running the asset graph into a test database, and connecting as a read-only Metabase login."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from dagster import DagsterInstance, materialize
from psycopg import sql

from covid_pipeline.cli import sample_sources
from covid_pipeline.definitions import all_assets, all_checks
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.sources import SourcesResource
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource


def run_graph(
    database_url,
    raw_location,
    cases_url,
    provinces_url,
    departments_url,
    quality=None,
    reports=None,
    **kwargs,
):
    """Materialize every asset and check into `database_url`, raw files kept at `raw_location`."""
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
        [*all_assets, *all_checks], resources=resources, instance=DagsterInstance.ephemeral(), **kwargs
    )


def run_all_assets(
    database_url: str, folder: Path, cases_url: str | None = None, reports: str | None = None, selection=None
):
    """Materialize every asset (or `selection`): the bundled sample's sources unless `cases_url` is given."""
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


def metadata_of(result, asset_name):
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key.path == [asset_name]]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def query(url, statement, params=None):
    with psycopg.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def new_database(server_url: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server_url.replace("/postgres?", f"/{name}?")


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
