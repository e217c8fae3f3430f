"""Reference tables from georef: covid.provinces and covid.departments.

georef writes strings quoted and numbers bare, columns sorted alphabetically; releases differ in
extra columns, so columns are found by name and the optional ones may be missing.
"""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg import sql

from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.raw import current_source, published_name, raw_csv_s3
from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.gate import LoadRefused, refuse_row_drop, refuse_row_growth
from covid_pipeline.ingest.reader import looks_double_encoded, position_of, repair_double_encoding
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource, swap_in


@dataclass(frozen=True)
class Field:
    source: str
    target: str
    parse: Callable[[str], object] = str
    required: bool = False


INTEGER_MAX = 2**31 - 1  # the columns are PostgreSQL integer


def _code(value: str) -> int:
    code = int(value)
    if not 0 <= code <= INTEGER_MAX:
        raise ValueError(f"a georef id is between 0 and {INTEGER_MAX}")
    return code


def _number(value: str) -> float:
    return float(value)


PROVINCE_FIELDS = (
    Field("id", "province_id", _code, required=True),
    Field("nombre", "name", required=True),
    Field("nombre_completo", "full_name"),
    Field("categoria", "category"),
    Field("iso_id", "iso_id"),
    Field("iso_nombre", "iso_name"),
    Field("centroide_lat", "centroid_lat", _number),
    Field("centroide_lon", "centroid_lon", _number),
    Field("fuente", "source"),
)

DEPARTMENT_FIELDS = (
    Field("id", "department_id", _code, required=True),
    Field("provincia_id", "province_id", _code, required=True),
    Field("nombre", "name", required=True),
    Field("nombre_completo", "full_name"),
    Field("categoria", "category"),
    Field("provincia_nombre", "province_name"),
    Field("centroide_lat", "centroid_lat", _number),
    Field("centroide_lon", "centroid_lon", _number),
    Field("provincia_interseccion", "province_intersection", _number),
    Field("fuente", "source"),
)


def parse_georef(data: bytes, file_name: str, fields: tuple[Field, ...]) -> list[dict]:
    """Rows of a georef CSV as dicts of target columns; errors name the file, line and column."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = position_of(data, exc.start)
        raise SourceFormatError(
            f"{file_name}, line {line}, column {column}: not valid UTF-8; georef publishes UTF-8, fetch it again"
        ) from exc
    if looks_double_encoded(text.split("\n", 1)[0] + text[:20000]):
        text = repair_double_encoding(text)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = [f.source for f in fields if f.required and f.source not in header]
    if missing:
        raise SourceFormatError(
            f"{file_name}, line 1: missing column(s) {', '.join(missing)}; found: {', '.join(header) or 'nothing'}"
        )
    rows = []
    for record in _records(reader, file_name):
        row = {}
        for field in fields:
            value = (record.get(field.source) or "").strip()
            if "\0" in value:
                raise SourceFormatError(
                    f"{file_name}, line {reader.line_num}, column {field.source}: contains a NUL byte (0x00), "
                    "which no georef value has: the file is damaged, fetch it again"
                )
            if not value:
                if field.required:
                    raise SourceFormatError(
                        f"{file_name}, line {reader.line_num}, column {field.source}: empty, but required"
                    )
                row[field.target] = None
                continue
            try:
                row[field.target] = field.parse(value)
            except ValueError as exc:
                raise SourceFormatError(
                    f"{file_name}, line {reader.line_num}, column {field.source}: cannot read {value!r} ({exc})"
                ) from exc
        rows.append(row)
    return rows


def _records(reader: csv.DictReader, file_name: str):
    try:
        yield from reader
    except csv.Error as exc:
        raise SourceFormatError(f"{file_name}, line {reader.line_num}: not readable as CSV ({exc})") from exc


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
    table: str,
    fields: tuple[Field, ...],
) -> MaterializeResult:
    """Rebuild `covid.<table>` from the raw store's georef source of the same name."""
    store = raw_store.store()
    with failures_for_people(f"covid.{table} was left as it was."):
        entry = current_source(store, table)
        rows = parse_georef(store.get_bytes(entry["key"]), published_name(entry["url"]), fields)
        duplicates = len(rows) - len({r[fields[0].target] for r in rows})
        if duplicates:
            raise SourceFormatError(f"{entry['url']}: {duplicates} duplicated id(s); georef ids are unique")
    if table == "departments":
        for row in rows:
            row["department_code"] = row["department_id"] % 1000
    with failures_for_people(f"covid.{table} was left as it was."), warehouse.connect() as conn:
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


def reference_asset(table: str, fields: tuple[Field, ...], description: str):
    """An asset that rebuilds `covid.<table>` from the georef source of the same name in the raw store."""

    @asset(name=table, deps=[raw_csv_s3], group_name="reference", kinds={"postgres"}, description=description)
    def _reference(
        context: AssetExecutionContext,
        warehouse: WarehouseResource,
        raw_store: StoreResource,
        quality: QualityResource,
    ):
        return _materialize_reference(context, warehouse, raw_store, quality, table, fields)

    return _reference


provinces = reference_asset("provinces", PROVINCE_FIELDS, "georef provinces: covid.provinces")
departments = reference_asset("departments", DEPARTMENT_FIELDS, "georef departments: covid.departments")
