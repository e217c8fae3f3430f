"""exports: every reporting mart as a Parquet file in the reports store, for analysts who do not use SQL.

`exports/<table>.parquet` always holds the latest publication's; `exports/<publication date>/<table>.parquet`
keeps each publication's, so a link to either stays valid. All tables are read from one snapshot. Types follow
the table's: dates are dates, integers integers, text text, booleans booleans; PostgreSQL's numeric (rates,
percentages, averages, rounded to a few decimals) becomes a double, which every Parquet reader reads as a number.
Each file's schema metadata names the table, its description and the publication it comes from.
"""

import io
from decimal import Decimal

import pyarrow as pa
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg import sql

from covid_pipeline.assets.codebook import describe_tables
from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.reporting import MARTS, SCHEMA, key_of
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource

FOLDER = "exports"
# PostgreSQL type names (pg_type.typname) of the marts' columns -> Arrow types.
ARROW_TYPES = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "numeric": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "text": pa.string(),
    "varchar": pa.string(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
}


def read_table(conn, name: str, types: dict[int, str], metadata: dict[str, str]) -> pa.Table:
    """reporting.<name> as an Arrow table of the same columns and types."""
    cursor = conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(SCHEMA, name)))
    rows = cursor.fetchall()
    fields, columns = [], []
    for index, column in enumerate(cursor.description):
        arrow_type = ARROW_TYPES[types[column.type_code]]
        values = [row[index] for row in rows]
        if types[column.type_code] == "numeric":
            values = [float(v) if isinstance(v, Decimal) else v for v in values]
        fields.append(pa.field(column.name, arrow_type))
        columns.append(pa.array(values, type=arrow_type))
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=metadata))


def parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq  # here, not at the top: every process that loads the definitions would pay for it

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def export_marts(conn, store, names=MARTS) -> dict[str, dict]:
    """Write every mart to the store (latest and dated copies); what was written, by table."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    types = dict(conn.execute("SELECT oid::int, typname FROM pg_type").fetchall())
    [(published,)] = conn.execute("SELECT last_updated FROM reporting.latest_update").fetchall() or [(None,)]
    dated = str(published or "undated")
    descriptions = describe_tables()
    written = {}
    for name in names:
        metadata = {
            "table": f"{SCHEMA}.{name}",
            "description": descriptions.get(f"{SCHEMA}.{name}", {}).get("description", ""),
            "registry_published": dated,
        }
        table = read_table(conn, name, types, metadata)
        data = parquet_bytes(table)
        uri = store.put_bytes(data, f"{FOLDER}/{name}.parquet", "application/vnd.apache.parquet")
        store.put_bytes(data, f"{FOLDER}/{dated}/{name}.parquet", "application/vnd.apache.parquet")
        written[name] = {"rows": table.num_rows, "bytes": len(data), "uri": uri}
    return written


@asset(
    deps=[key_of(name) for name in MARTS],
    group_name="reporting",
    kinds={"parquet"},
    description="Every reporting table as Parquet in the reports store: `exports/<table>.parquet` (latest) and "
    "`exports/<publication date>/<table>.parquet`.",
)
def exports(
    context: AssetExecutionContext, warehouse: WarehouseResource, reports_store: StoreResource
) -> MaterializeResult:
    store = reports_store.store()
    with failures_for_people("The published exports were left as they were."), warehouse.connect() as conn:
        written = export_marts(conn, store)
    context.log.info(f"{len(written)} tables exported to {store.uri(FOLDER)}")
    listing = ["| table | rows | bytes |", "|---|---:|---:|"] + [
        f"| `{name}` | {w['rows']:,} | {w['bytes']:,} |" for name, w in written.items()
    ]
    link = MetadataValue.url if store.is_s3 else MetadataValue.path
    return MaterializeResult(
        metadata={
            "exports_uri": link(store.uri(FOLDER)),
            "tables": MetadataValue.int(len(written)),
            "bytes": MetadataValue.int(sum(w["bytes"] for w in written.values())),
            "files": MetadataValue.md("\n".join(listing)),
        }
    )
