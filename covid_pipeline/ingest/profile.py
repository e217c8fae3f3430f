"""What the load counts while it streams: the figures the checks on covid.cases need, without a scan.

A profile counts rows four ways: per date column and day, per value of the categorical columns, per
residence place (province and department codes and the department's name as written), and per outcome
(clasificacion_resumen with the fallecido / cuidado_intensivo / asistencia_respiratoria_mecanica flags).
Each chunk is counted by Arrow's compute kernels as it is cleaned; the counts (a few hundred per chunk) are
added up in Python. The load records its profile under its load_id in covid.load_dates, load_values,
load_places and load_outcomes; the rows deduplication removes afterwards are counted out there by profile_sql,
the query that counts a table the same way.

The checks read the recorded profile as long as covid.cases is still the table that load wrote; once anything
changed the table, they count the table itself with profile_sql, and get the same figures for the same rows.
"""

from collections import Counter
from collections.abc import Iterator
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from covid_pipeline.ingest.registry_format import CATEGORICAL_COLUMNS, REGISTRY_COLUMNS, Kind
from covid_pipeline.resources.database import read_sql

DATE_COLUMNS = tuple(c for c in REGISTRY_COLUMNS if c.kind is Kind.DATE)
PLACE = ("residence_province_id", "residence_department_id", "residence_department")
OUTCOME = ("classification_summary", "deceased", "icu", "ventilated")

# kind -> (table, whether its rows are per registry column (column_name), its key columns); each table also
# has load_id and rows.
TABLES = {
    "dates": ("load_dates", True, ("day",)),
    "values": ("load_values", True, ("value",)),
    "places": ("load_places", False, ("province_id", "department_id", "department_name")),
    "outcomes": ("load_outcomes", False, OUTCOME),
}


class CasesProfile:
    """Row counts per kind: keyed by (registry column, value) for dates and values, by the key columns' values
    for places and outcomes."""

    def __init__(self):
        self.counts: dict[str, Counter] = {kind: Counter() for kind in TABLES}

    @classmethod
    def of(cls, table: pa.Table) -> "CasesProfile":
        """The profile of a cleaned chunk (typed columns named as in covid.cases)."""
        profile = cls()
        for kind, columns in (("dates", DATE_COLUMNS), ("values", CATEGORICAL_COLUMNS)):
            for column in columns:
                counted = pc.value_counts(table.column(column.target))
                values, rows = counted.field("values").to_pylist(), counted.field("counts").to_pylist()
                for value, count in zip(values, rows, strict=True):
                    if value is not None or kind == "values":  # an empty date is not a day
                        profile.counts[kind][(column.source, value)] += count
        for kind, columns in (("places", PLACE), ("outcomes", OUTCOME)):
            for key, count in _grouped(table, columns):
                profile.counts[kind][key] += count
        return profile

    def add(self, other: "CasesProfile") -> None:
        for kind, counter in self.counts.items():
            counter.update(other.counts[kind])

    def most_common_day(self, source_column: str) -> date | None:
        """The day that occurs most often in a date column (the latest of equals); None when it has none."""
        days = {day: rows for (column, day), rows in self.counts["dates"].items() if column == source_column}
        return max(days, key=lambda day: (days[day], day)) if days else None

    def write(self, conn, load_id: int) -> None:
        """Record the profile under `load_id`, replacing every older load's (they describe tables gone)."""
        for kind, (table, per_column, keys) in TABLES.items():
            name = sql.Identifier("covid", table)
            conn.execute(sql.SQL("DELETE FROM {}").format(name))
            columns = ("load_id", *(("column_name",) if per_column else ()), *keys, "rows")
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                name, sql.SQL(", ").join(map(sql.Identifier, columns))
            )
            with conn.cursor().copy(statement) as copy:
                for key, rows in self.counts[kind].items():
                    copy.write_row((load_id, *key, rows))

    @staticmethod
    def count_out(conn, load_id: int, relation: sql.Composable) -> None:
        """Take `relation`'s rows (counted by profile_sql) out of the profile `load_id` recorded."""
        for kind, (table, per_column, keys) in TABLES.items():
            name = sql.Identifier("covid", table)
            # keys that may be NULL match with IS NOT DISTINCT FROM (no hash join: those tables are small)
            matches = [sql.SQL("t.column_name = d.column_name")] if per_column else []
            matches += [
                sql.SQL("t.{0} {1} d.{0}").format(
                    sql.Identifier(key), sql.SQL("=" if kind == "dates" else "IS NOT DISTINCT FROM")
                )
                for key in keys
            ]
            conn.execute(
                sql.SQL(
                    "WITH d AS ({}) UPDATE {} t SET rows = t.rows - d.rows FROM d WHERE t.load_id = {} AND {}"
                ).format(
                    profile_sql(kind, relation), name, sql.Literal(load_id), sql.SQL(" AND ").join(matches)
                )
            )
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE load_id = {} AND rows = 0").format(name, sql.Literal(load_id))
            )


def _grouped(table: pa.Table, columns: tuple[str, ...]) -> Iterator[tuple[tuple, int]]:
    """Rows per combination of the columns' values (None for empty), with compute kernels only: each column's
    values are numbered (dictionary_encode) and the numbers combined into one integer key whose values are
    counted. Arrow's group_by would do the same, but loading its engine (Acero) costs 50 MB of memory."""
    key = np.zeros(table.num_rows, dtype=np.int64)
    dictionaries = []
    for name in columns:
        encoded = pc.dictionary_encode(table.column(name).combine_chunks())
        values = [*encoded.dictionary.to_pylist(), None]  # the last number: empty
        indices = (
            encoded.indices
        )  # int32; a Python scalar given to fill_null would make pyarrow import pandas
        codes = np.frombuffer(indices.buffers()[1], np.int32, len(indices), indices.offset).astype(np.int64)
        if indices.null_count:  # read from the validity bitmap (to_numpy() would import pandas too)
            bits = np.frombuffer(indices.buffers()[0], np.uint8)
            valid = np.unpackbits(bits, bitorder="little")[indices.offset : indices.offset + len(indices)]
            codes[valid == 0] = len(values) - 1
        key = key * len(values) + codes
        dictionaries.append(values)
    keys = pa.Array.from_buffers(pa.int64(), len(key), [None, pa.py_buffer(key)])
    counted = pc.value_counts(keys)
    for number, rows in zip(
        counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
    ):
        combination = []
        for values in reversed(dictionaries):
            number, code = divmod(number, len(values))
            combination.append(values[code])
        yield tuple(reversed(combination)), rows


def profile_sql(kind: str, relation: sql.Composable) -> sql.Composed:
    """The query that counts `relation`'s rows (covid.cases' columns) as CasesProfile counts a chunk: the
    columns of `kind`'s table but load_id."""
    unpivoted = {
        "dates": [(c.source, c.target) for c in DATE_COLUMNS],
        "values": [(c.source, c.target) for c in CATEGORICAL_COLUMNS],
    }.get(kind, [])
    pairs = sql.SQL(", ").join(
        sql.SQL("({}, c.{})").format(sql.Literal(source), sql.Identifier(target))
        for source, target in unpivoted
    )
    text = read_sql("covid_pipeline.assets.sql", f"cases_profile_{kind}.sql")
    return sql.SQL(text).format(relation=relation, pairs=pairs)


def recorded_sql(kind: str, load_id: int) -> sql.Composed:
    """The profile `load_id` recorded, as a query with the same columns as profile_sql."""
    table, per_column, keys = TABLES[kind]
    columns = (*(("column_name",) if per_column else ()), *keys, "rows")
    return sql.SQL("SELECT {} FROM {} WHERE load_id = {}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("covid", table), sql.Literal(load_id)
    )
