"""Running the asset graph into a test database, and connecting as a read-only Metabase login."""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from dagster import DagsterInstance, materialize
from psycopg import sql

from covid_pipeline.cli import sample_sources
from covid_pipeline.definitions import all_assets
from covid_pipeline.resources.sources import SourcesResource
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource


def run_all_assets(
    database_url: str, folder: Path, cases_url: str | None = None, reports: str | None = None, selection=None
):
    """Materialize every asset (or `selection`): the bundled sample's sources unless `cases_url` is given."""
    sources = sample_sources()
    resources = {
        "warehouse": WarehouseResource(database_url=database_url),
        "raw_store": StoreResource(location=str(folder / "raw")),
        "reports_store": StoreResource(location=reports or str(folder / "reports")),
        "sources": SourcesResource(
            cases_url=cases_url or sources["COVID_CASES_URL"],
            provinces_url=sources["COVID_PROVINCES_URL"],
            departments_url=sources["COVID_DEPARTMENTS_URL"],
            backoff_seconds=0.01,
        ),
    }
    result = materialize(
        all_assets, resources=resources, instance=DagsterInstance.ephemeral(), selection=selection
    )
    assert result.success
    return result


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
