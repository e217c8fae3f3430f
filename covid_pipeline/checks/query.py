"""Running a check's .sql file: one row back, as a dict."""

from psycopg.rows import dict_row

from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.warehouse import WarehouseResource


def fetch(warehouse: WarehouseResource, sql_file: str, params: dict | None = None, many: bool = False):
    with warehouse.connect() as conn, conn.cursor(row_factory=dict_row) as cursor:
        cursor.execute(read_sql("covid_pipeline.checks.sql", sql_file), params)
        return cursor.fetchall() if many else cursor.fetchone()


def share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
