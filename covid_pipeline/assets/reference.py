"""Reference tables from georef: covid.provinces and covid.departments.

Each file is checked whole before it replaces its table (ingest/georef.py): one bad row refuses the file,
naming the row, and the previous table stays. Departments are checked against covid.provinces as well (each
lies in a province it holds), so they are loaded after the provinces.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg import sql

from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.raw import current_source, published_name, raw_csv_s3
from covid_pipeline.ingest.gate import LoadRefused, refuse_row_drop, refuse_row_growth
from covid_pipeline.ingest.georef import (
    DEPARTMENTS,
    PROVINCES,
    GeorefFile,
    read_georef,
    refuse_unknown_provinces,
)
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.swap import swap_in
from covid_pipeline.resources.warehouse import WarehouseResource


def replace_table(conn, table: str, ddl_file: str, rows: list[dict]) -> None:
    """Build `covid.<table>` anew from `rows` and swap it in (one transaction, readers unaffected)."""
    incoming = f"{table}__incoming"
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("covid", incoming)))
    conn.execute(
        sql.SQL(read_sql("covid_pipeline.assets.sql", ddl_file)).format(
            table=sql.Identifier("covid", incoming)
        )
    )
    if rows:
        columns = list(rows[0])
        statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
            sql.Identifier("covid", incoming), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        with conn.cursor().copy(statement) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
    swap_in(conn, "covid", incoming, table)


def _refuse_lost_rows(
    conn, table: str, rows: int, file_name: str, max_drop: float, max_growth: float = float("inf")
) -> None:
    """The reference files' gate: a file that empties its table, or loses more than `max_drop` of the
    rows the table holds, is a header-only or truncated download, not a new georef release; one with
    more than `max_growth` more rows is another file (the provinces and departments swapped)."""
    current = 0
    if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"covid.{table}",)).fetchone()[0]:
        current = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("covid", table))
        ).fetchone()[0]
    if rows == 0:
        raise LoadRefused(
            f"{file_name}: no rows after the header; covid.{table} would be emptied. Fetch it again."
        )
    refuse_row_drop(
        file_name,
        rows,
        "rows",
        current,
        baseline_is=f"covid.{table} holds",
        max_drop=max_drop,
        setting="max_reference_row_drop",
        suspicion="a truncated download?",
    )
    refuse_row_growth(
        file_name,
        rows,
        "rows",
        current,
        baseline_is=f"covid.{table} holds",
        max_growth=max_growth,
        setting="max_reference_row_growth",
        suspicion="the provinces and departments files swapped, or another file?",
    )


def _materialize_reference(
    context: AssetExecutionContext,
    warehouse: WarehouseResource,
    raw_store: StoreResource,
    quality: QualityResource,
    spec: GeorefFile,
) -> MaterializeResult:
    """Rebuild `covid.<table>` from the raw store's georef source of the same name."""
    table = spec.table
    store = raw_store.store()
    with failures_for_people(f"covid.{table} was left as it was."):
        entry = current_source(store, table)
        file_name = published_name(entry["url"])
        read = read_georef(store.get_bytes(entry["key"]), file_name, spec)
    rows = [row.values for row in read]
    with failures_for_people(f"covid.{table} was left as it was."), warehouse.connect() as conn:
        if spec is DEPARTMENTS:
            refuse_unknown_provinces(
                read, dict(conn.execute("SELECT province_id, name FROM covid.provinces")), file_name
            )
        _refuse_lost_rows(
            conn,
            table,
            len(rows),
            published_name(entry["url"]),
            quality.max_reference_row_drop,
            quality.max_reference_row_growth,
        )
        replace_table(conn, table, f"{table}_table.sql", rows)
    context.log.info(f"covid.{table}: {len(rows)} rows from {entry['uri']}")
    return MaterializeResult(
        metadata={
            "rows": MetadataValue.int(len(rows)),
            "table": MetadataValue.text(f"covid.{table}"),
            "source_sha256": MetadataValue.text(entry["sha256"]),
        }
    )


def reference_asset(spec: GeorefFile, description: str, deps: list):
    """An asset that rebuilds `covid.<table>` from the georef source of the same name in the raw store."""

    @asset(name=spec.table, deps=deps, group_name="reference", kinds={"postgres"}, description=description)
    def _reference(
        context: AssetExecutionContext,
        warehouse: WarehouseResource,
        raw_store: StoreResource,
        quality: QualityResource,
    ):
        return _materialize_reference(context, warehouse, raw_store, quality, spec)

    return _reference


provinces = reference_asset(PROVINCES, "georef provinces: covid.provinces", [raw_csv_s3])
departments = reference_asset(
    DEPARTMENTS,
    "georef departments: covid.departments (each in a province of covid.provinces)",
    [raw_csv_s3, provinces],
)
