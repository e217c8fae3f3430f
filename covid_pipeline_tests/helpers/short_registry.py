"""A short registry (the first 300 rows of the real 2020-11-23 sample, as SISA writes them), changed a line at a
time, and run through the graph on a warehouse that already holds it (the `short_warehouse` fixture): what a
changed file does to the tables, compared by checksums before and after."""

import zipfile
from pathlib import Path

from psycopg import sql

from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline_tests.helpers.registry import format_line, real_rows, registry_text
from covid_pipeline_tests.helpers.warehouse import query, run_graph

BASE_ROWS = 300
# What the registry's load feeds: the tables a changed file may change, and the steps that build them.
TABLES = ("covid.cases", "covid.daily_aggregates", "covid.provinces", "covid.departments")
UP_TO_AGGREGATES = ["raw_csv_s3", "provinces", "departments", "cleaned_cases", "daily_aggregates"]


def base_lines() -> list[str]:
    """The header and the first BASE_ROWS rows of the real 2020-11-23 sample, as SISA writes them."""
    return registry_text(real_rows(BASE_ROWS)).splitlines()


def line_of(values: dict) -> str:
    return format_line([values[c] for c in SOURCE_NAMES])


def changed_line(index: int, **changes) -> tuple[list[str], int]:
    """The base file with data row `index` changed; returns the lines and that row's physical line."""
    lines = base_lines()
    lines[index + 1] = line_of(real_rows(BASE_ROWS)[index] | changes)
    return lines, index + 2


def zipped(path: Path, data: bytes, member: str = "Covid19Casos.csv", extra: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return path


def registry_zip(folder: Path, lines: list[str], name: str = "Covid19Casos.zip", newline: str = "\n") -> Path:
    return zipped(folder / "changed" / name, (newline.join(lines) + newline).encode())


def run_changed(warehouse, lines: list[str], **kwargs):
    """The graph up to the aggregates on a registry of `lines`: its result, and the checksums before it."""
    url, folder = warehouse
    before = checksums(url)
    result = run_graph(
        url,
        folder,
        cases=registry_zip(folder, lines),
        selection=UP_TO_AGGREGATES,
        raise_on_error=False,
        **kwargs,
    )
    return result, before


def checksums(url) -> dict:
    """Row count and a hash of every row of each table: equal only if no value changed."""
    sums = {}
    for table in TABLES:
        schema, name = table.split(".")
        statement = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
        )
        sums[table] = query(url, statement.format(sql.Identifier(schema, name)))[0]
    return sums


def rejects(url) -> list[tuple]:
    return query(
        url, "SELECT line_number, column_name, reason, raw_line FROM covid.rejected_cases ORDER BY 1"
    )


def loaded_ids(url) -> list[int]:
    return [r[0] for r in query(url, "SELECT case_id FROM covid.cases ORDER BY case_id")]
