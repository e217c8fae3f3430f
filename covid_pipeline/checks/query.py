"""Running a check's .sql file: one row back, as a dict (or every row).

A check file may read covid.cases' counts through a placeholder named after a profile kind ({dates},
{values}, {places}, {outcomes}: ingest/profile.py). It is filled with what covid.cases' load counted while the
table is still exactly what that load wrote (cases_as_loaded.sql), else with the same counts taken from the
table now: the figures are the table's either way, and only a changed table costs a scan.
"""

import re

from psycopg import sql
from psycopg.rows import dict_row

from covid_pipeline.ingest.profile import TABLES, profile_sql, recorded_sql
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.warehouse import WarehouseResource

CASES = sql.Identifier("covid", "cases")


def fetch(warehouse: WarehouseResource, sql_file: str, params: dict | None = None, many: bool = False):
    return fetch_counted(warehouse, sql_file, params, many)[0]


def fetch_counted(
    warehouse: WarehouseResource, sql_file: str, params: dict | None = None, many: bool = False
) -> tuple:
    """The query's row(s), and where covid.cases' counts came from (`counted_from`), for the metadata."""
    text = read_sql("covid_pipeline.checks.sql", sql_file)
    kinds = set(re.findall(r"\{(\w+)\}", text))
    with warehouse.connect() as conn, conn.cursor(row_factory=dict_row) as cursor:
        origin = None
        statement: str | sql.Composed = text
        if kinds:
            load_id = cases_as_loaded(conn)
            statement = sql.SQL(text).format(**{kind: profile_of_cases(kind, load_id) for kind in kinds})
            origin = counted_from(load_id)
        cursor.execute(statement, params)
        return (cursor.fetchall() if many else cursor.fetchone()), origin


def cases_as_loaded(conn) -> int | None:
    """The load whose recorded counts still describe covid.cases (None: the table changed since, count it)."""
    row = conn.execute(read_sql("covid_pipeline.checks.sql", "cases_as_loaded.sql")).fetchone()
    return row[0] if row else None


def profile_of_cases(kind: str, load_id: int | None) -> sql.Composed:
    if kind not in TABLES:
        raise KeyError(f"no such profile of covid.cases: {kind}")
    return recorded_sql(kind, load_id) if load_id else profile_sql(kind, CASES)


def counted_from(load_id: int | None) -> str:
    if load_id:
        return f"load {load_id}'s counts (covid.cases unchanged since)"
    return "covid.cases itself (changed since its load, or loaded before loads kept counts)"


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
