"""What the load counts while it streams (ingest/profile.py) is what covid.cases holds, and the checks that read
those counts give the table's own figures: the same as counting the table, and counted again once the table was
changed behind the pipeline's back."""

from collections import Counter

import psycopg
import pytest
from psycopg import sql

from covid_pipeline.checks.query import cases_as_loaded
from covid_pipeline.cli import sample_sources
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.ingest.profile import TABLES, profile_sql, recorded_sql
from covid_pipeline_tests.helpers.registry import real_rows, write_registry
from covid_pipeline_tests.helpers.warehouse import checks_of, query, run_graph

SAMPLE = sample_sources()
CASES = sql.Identifier("covid", "cases")
# The checks whose figures come from the counts, and the metadata that says from where.
COUNTED = ("case_ids_unique", "dates_in_range", "categorical_values_known", "codes_known_to_georef")


def varied_rows() -> list[dict]:
    """Real rows with what the profile must count right: empty and out-of-range dates, unknown and misspelt
    categorical values, unknown places, rejected rows, and ids repeated across chunks whose earlier
    occurrences differ from the last (those are removed, and must be counted out)."""
    rows = real_rows(3_000)
    rows[1]["fecha_fallecimiento"] = "2019-06-01"  # before the epidemic (a future date is rejected on load)
    rows[2]["fecha_inicio_sintomas"] = "1950-05-05"
    rows[3]["fecha_apertura"] = ""
    rows[4]["sexo"] = "X"
    rows[5]["clasificacion_resumen"] = "confirmado "  # written as SISA writes it
    rows[6]["origen_financiamiento"] = ""
    rows[7]["residencia_provincia_id"] = "55"
    rows[8]["residencia_departamento_id"] = "999"
    rows[8]["residencia_departamento_nombre"] = "Nowhere"
    rows[9]["fecha_internacion"] = "2020-02-30"  # rejected: not a date
    for earlier in rows[10:40]:  # repeated near the end, the last occurrence changed
        later = earlier | {"sexo": "NR", "fecha_apertura": "2020-11-01", "residencia_provincia_id": "99"}
        earlier |= {"sexo": "Q", "clasificacion_resumen": "Otro", "fallecido": "SI"}
        rows.append(later)
    return rows


def recorded(url: str, kind: str, load_id: int) -> Counter:
    return Counter({tuple(r[:-1]): r[-1] for r in query(url, recorded_sql(kind, load_id))})


def counted(url: str, kind: str) -> Counter:
    return Counter({tuple(r[:-1]): r[-1] for r in query(url, profile_sql(kind, CASES))})


def test_the_load_records_what_the_table_holds_counted_four_ways(warehouse_url, tmp_path):
    path = write_registry(tmp_path / "Covid19Casos.zip", varied_rows())
    report = load_cases(warehouse_url, path, source_sha256="varied", chunk_bytes=64 * 1024)
    assert (report.rows_rejected, report.duplicate_rows) == (1, 30)

    for kind in TABLES:
        assert recorded(warehouse_url, kind, report.load_id) == counted(warehouse_url, kind), kind
    values = recorded(warehouse_url, "values", report.load_id)
    assert values[("sexo", "X")] == 1 and ("sexo", "Q") not in values  # "Q" rows were earlier occurrences
    assert (
        values[("clasificacion_resumen", "Confirmado")] > 0 and values[("origen_financiamiento", None)] == 1
    )
    dates = recorded(warehouse_url, "dates", report.load_id)
    assert (
        sum(rows for (column, _), rows in dates.items() if column == "fecha_apertura")
        == report.rows_loaded - 1
    )
    with psycopg.connect(warehouse_url) as conn:
        assert cases_as_loaded(conn) == report.load_id


def test_only_the_current_load_keeps_its_counts(warehouse_url, tmp_path):
    first = load_cases(warehouse_url, write_registry(tmp_path / "a.zip", real_rows(50)), source_sha256="a")
    second = load_cases(warehouse_url, write_registry(tmp_path / "b.zip", real_rows(60)), source_sha256="b")
    for kind, (table, _, _) in TABLES.items():
        assert query(warehouse_url, f"SELECT DISTINCT load_id FROM covid.{table}") == [(second.load_id,)], (
            kind
        )
    assert first.load_id != second.load_id
    assert sum(recorded(warehouse_url, "outcomes", second.load_id).values()) == 60


def figures(check) -> dict:
    return {k: v.value for k, v in check.metadata.items() if k != "counted_from"}


@pytest.fixture
def checked(database_url, tmp_path):
    """The graph (no report) run on the varied registry: the URL, and the checks as they read the load's counts."""
    registry = write_registry(tmp_path / "varied" / "Covid19Casos.zip", varied_rows())

    def run():
        result = run_graph(database_url, tmp_path, cases=registry)
        return checks_of(result)

    checks = run()
    return database_url, checks, run


def test_checks_read_the_counts_and_give_the_figures_a_scan_of_the_table_gives(checked):
    url, from_counts, run = checked
    for name in COUNTED:
        assert from_counts[name].metadata["counted_from"].value.startswith("load "), name
    assert from_counts["dates_in_range"].metadata["outside_range"].value == 2
    assert not from_counts["categorical_values_known"].passed
    # a statement that changes no row still marks the table as changed: the checks count it themselves
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE covid.cases SET sex = sex WHERE false")
    from_table = run()
    for name in (*COUNTED, "row_count_kept", "rejected_share_under_limit", "totals_match_cases"):
        assert figures(from_table[name]) == figures(from_counts[name]), name
        assert from_table[name].passed == from_counts[name].passed, name
    for name in COUNTED:
        assert from_table[name].metadata["counted_from"].value.startswith("covid.cases itself"), name


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE covid.cases SET death_date = '2099-01-01' WHERE case_id = (SELECT min(case_id) FROM covid.cases)",
        # the trigger that notes changes switched off first: the table is counted, whatever happened since
        "ALTER TABLE covid.cases DISABLE TRIGGER changed_after_load; "
        "UPDATE covid.cases SET death_date = '2099-01-01' WHERE case_id = (SELECT min(case_id) FROM covid.cases)",
        # a rewrite that fires no row trigger (the table gets another file)
        "ALTER TABLE covid.cases ALTER COLUMN death_date TYPE date USING death_date + 0",
        # the table dropped and made again outside the pipeline
        "CREATE TABLE covid.cases_copy AS SELECT * FROM covid.cases; DROP TABLE covid.cases CASCADE; "
        "ALTER TABLE covid.cases_copy RENAME TO cases; "
        "UPDATE covid.cases SET death_date = '2099-01-01' WHERE case_id = (SELECT min(case_id) FROM covid.cases)",
    ],
    ids=["update", "trigger-disabled", "rewritten", "replaced"],
)
def test_a_table_changed_outside_the_pipeline_is_counted_again(checked, change):
    url, before, run = checked
    with psycopg.connect(url) as conn:
        for statement in change.split("; "):
            conn.execute(statement)
        assert cases_as_loaded(conn) is None
    after = run()
    dates = after["dates_in_range"]
    assert dates.metadata["counted_from"].value.startswith("covid.cases itself")
    if "2099" in change:
        assert (
            dates.metadata["outside_range"].value
            == before["dates_in_range"].metadata["outside_range"].value + 1
        )
