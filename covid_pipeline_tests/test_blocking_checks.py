"""Blocking checks block: each one, made to fail by tampering with the tables, fails with its figures, and
daily_aggregates (or, for the check on it, what reads it) is not built."""

import psycopg
import pytest

from covid_pipeline.resources.quality import QualityResource
from covid_pipeline_tests.helpers.registry import real_rows, write_registry
from covid_pipeline_tests.helpers.short_registry import BASE_ROWS, UP_TO_AGGREGATES, base_lines, registry_zip
from covid_pipeline_tests.helpers.warehouse import (
    checks_of,
    downstream_of,
    fingerprint,
    materialized,
    query,
    run_graph,
)

BLOCKING = ("case_ids_unique", "row_count_kept", "rejected_share_under_limit", "totals_match_cases")


def checks_and_built(result):
    """The run's checks by name, and what it built."""
    return checks_of(result), materialized(result)


def figures(check) -> dict:
    return {k: v.value for k, v in check.metadata.items()}


def assert_blocked_at_cases(url, checks, built, failing: str, aggregates_before):
    """Only `failing` among the blocking checks failed, and nothing after covid.cases was rebuilt."""
    assert {name for name in BLOCKING if name in checks and not checks[name].passed} == {failing}
    assert checks[failing].severity.value == "ERROR"
    assert not built & downstream_of("cleaned_cases")  # daily_aggregates and everything after it
    assert fingerprint(url, "covid.daily_aggregates") == aggregates_before


def tamper(url, *statements) -> int:
    """Run statements behind the pipeline's back; the number of rows the last one touched."""
    with psycopg.connect(url) as conn:
        for statement in statements:
            cursor = conn.execute(statement)
        return cursor.rowcount


def let_through_then_checked(url, tmp_path, registry, check: str, relaxed: QualityResource):
    """Someone loads `registry` with the gate opened (`relaxed`, under which `check` passes too); the next run,
    with the default thresholds, checks the same table: its checks, what it built, the aggregates before it."""
    checks, _ = checks_and_built(
        run_graph(url, tmp_path, cases=registry, quality=relaxed, raise_on_error=False)
    )
    assert checks[check].passed
    aggregates = fingerprint(url, "covid.daily_aggregates")
    return *checks_and_built(run_graph(url, tmp_path, cases=registry, raise_on_error=False)), aggregates


@pytest.mark.parametrize("fault", ["duplicated", "null"])
def test_case_ids_unique_blocks_on_repeated_or_null_ids(sample_copy, tmp_path, fault):
    aggregates = fingerprint(sample_copy, "covid.daily_aggregates")
    new_id = "(SELECT min(case_id) FROM covid.cases)" if fault == "duplicated" else "NULL"
    changed = tamper(
        sample_copy,
        "ALTER TABLE covid.cases DROP CONSTRAINT cases_pkey, ALTER COLUMN case_id DROP NOT NULL",
        f"UPDATE covid.cases SET case_id = {new_id} "
        "WHERE case_id IN (SELECT case_id FROM covid.cases ORDER BY case_id DESC LIMIT 7)",
    )
    checks, built = checks_and_built(run_graph(sample_copy, tmp_path, raise_on_error=False))
    counts = figures(checks["case_ids_unique"])
    assert (counts["duplicated_ids"], counts["null_ids"]) == (
        (changed, 0) if fault == "duplicated" else (0, changed)
    )
    assert_blocked_at_cases(sample_copy, checks, built, "case_ids_unique", aggregates)


def test_row_count_kept_blocks_when_the_table_differs_from_its_load(sample_copy, tmp_path):
    aggregates = fingerprint(sample_copy, "covid.daily_aggregates")
    deleted = tamper(sample_copy, "DELETE FROM covid.cases WHERE case_id % 10 = 0")
    checks, built = checks_and_built(run_graph(sample_copy, tmp_path, raise_on_error=False))
    counts = figures(checks["row_count_kept"])
    assert counts["rows_recorded_by_load"] - counts["rows"] == deleted > 0
    assert counts["rows"] == query(sample_copy, "SELECT count(*) FROM covid.cases")[0][0]
    assert_blocked_at_cases(sample_copy, checks, built, "row_count_kept", aggregates)


def test_row_count_kept_blocks_a_drop_its_load_did_not_accept(sample_copy, tmp_path):
    """The drop branch. A drop that a load's gate accepted is the new baseline (later runs on the same file
    pass); a drop larger than what the load recorded as accepted is blocked. Such a record is
    what a load made before the pipeline kept the accepted drop looks like (max_row_drop NULL): the
    current COVID_MAX_ROW_DROP then applies."""
    rows = real_rows()
    shorter = write_registry(tmp_path / "short" / "Covid19Casos.zip", rows[: len(rows) * 3 // 4])
    checks, _ = checks_and_built(
        run_graph(
            sample_copy,
            tmp_path,
            cases=shorter,
            quality=QualityResource(max_row_drop=1.0),
            raise_on_error=False,
        )
    )
    assert checks["row_count_kept"].passed
    checks, _ = checks_and_built(run_graph(sample_copy, tmp_path, cases=shorter, raise_on_error=False))
    assert checks["row_count_kept"].passed, "an accepted drop is the new baseline"
    aggregates = fingerprint(sample_copy, "covid.daily_aggregates")
    tamper(
        sample_copy,
        "UPDATE covid.loads SET max_row_drop = NULL WHERE load_id = (SELECT max(load_id) FROM covid.loads)",
    )
    checks, built = checks_and_built(run_graph(sample_copy, tmp_path, cases=shorter, raise_on_error=False))
    counts = figures(checks["row_count_kept"])
    assert (counts["rows"], counts["rows_recorded_by_load"], counts["previous_load_rows"]) == (
        len(rows) * 3 // 4,
        len(rows) * 3 // 4,
        len(rows),
    )
    assert counts["drop"] == pytest.approx(1 - (len(rows) * 3 // 4) / len(rows), abs=1e-6)
    assert counts["drop"] > counts["max_row_drop"] == QualityResource().max_row_drop
    assert "COVID_MAX_ROW_DROP" in checks["row_count_kept"].description
    assert_blocked_at_cases(sample_copy, checks, built, "row_count_kept", aggregates)


def test_rejected_share_under_limit_blocks_what_a_relaxed_gate_let_through(warehouse_url, tmp_path):
    rows = real_rows(2_000)
    for bad in rows[::10]:
        bad["fecha_apertura"] = "23/11/2020"  # a date format the registry never used
    registry = write_registry(tmp_path / "Covid19Casos.zip", rows)
    checks, built, aggregates = let_through_then_checked(
        warehouse_url,
        tmp_path,
        registry,
        "rejected_share_under_limit",
        QualityResource(max_rejected_share=0.2),
    )
    counts = figures(checks["rejected_share_under_limit"])
    assert (counts["rows_read"], counts["rows_rejected"], counts["rows_in_covid.rejected_cases"]) == (
        len(rows),
        len(rows[::10]),
        len(rows[::10]),
    )
    assert counts["rejected_share"] == pytest.approx(len(rows[::10]) / len(rows))
    assert_blocked_at_cases(warehouse_url, checks, built, "rejected_share_under_limit", aggregates)


# A fault in the aggregation itself: right after daily_aggregates' loading table is computed, one of its cells
# gains 3 confirmed cases (an event trigger on the CREATE TABLE AS; the server's user is a superuser).
MISCOUNT = """
CREATE FUNCTION public.miscount() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands()
                WHERE object_identity = 'covid.daily_aggregates__incoming') THEN
        UPDATE covid.daily_aggregates__incoming SET confirmed = confirmed + 3
         WHERE ctid = (SELECT ctid FROM covid.daily_aggregates__incoming WHERE confirmed > 0 LIMIT 1);
    END IF;
END $$;
CREATE EVENT TRIGGER miscount ON ddl_command_end WHEN TAG IN ('CREATE TABLE AS') EXECUTE FUNCTION public.miscount();
"""


def test_totals_match_cases_blocks_aggregates_that_disagree_with_the_cases(sample_copy, tmp_path):
    with psycopg.connect(sample_copy, autocommit=True) as admin:
        admin.execute(MISCOUNT)
    checks, built = checks_and_built(run_graph(sample_copy, tmp_path, raise_on_error=False))
    check = checks["totals_match_cases"]
    assert not check.passed and check.severity.value == "ERROR"
    differences = {k: v for k, v in figures(check).items() if k.endswith("_difference")}
    assert differences == {
        "notified_difference": 0,
        "confirmed_difference": 3,
        "deaths_difference": 0,
        "icu_difference": 0,
        "ventilated_difference": 0,
    }
    [(confirmed,)] = query(
        sample_copy, "SELECT count(*) FROM covid.cases WHERE classification_summary = 'Confirmado'"
    )
    assert f"| confirmed | {confirmed + 3:,} | {confirmed:,} |" in figures(check)["totals"]
    assert "daily_aggregates" in built and not built & downstream_of("daily_aggregates")


def test_row_count_kept_takes_a_drop_accepted_once_as_the_new_baseline(short_warehouse):
    url, folder = short_warehouse
    small = registry_zip(folder, base_lines()[:3])
    accepted = QualityResource(max_row_drop=1.0)
    assert run_graph(url, folder, cases=small, quality=accepted, selection=UP_TO_AGGREGATES).success
    again = run_graph(url, folder, cases=small, selection=UP_TO_AGGREGATES)  # the same file, default settings
    assert again.success
    check = checks_of(again)["row_count_kept"]
    assert check.passed and check.metadata["max_row_drop_accepted_by_load"].value == 1.0


def test_row_count_kept_names_the_figures_and_the_setting(short_warehouse):
    from covid_pipeline.checks.cases import row_count_kept
    from covid_pipeline.resources.warehouse import WarehouseResource

    url, _ = short_warehouse
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM covid.cases WHERE case_id IN (SELECT case_id FROM covid.cases LIMIT 100)")
        conn.execute(
            "INSERT INTO covid.loads (source_sha256, source_bytes, rows_read, rows_loaded, rows_rejected,"
            " duplicate_rows, started_at, max_row_drop) VALUES ('x', 1, 200, 200, 0, 0, now(), 0.1)"
        )
    result = row_count_kept(WarehouseResource(database_url=url), QualityResource())
    assert not result.passed
    assert f"{BASE_ROWS - 100:,} rows, 33.3% fewer than the {BASE_ROWS:,}" in result.description
    assert "COVID_MAX_ROW_DROP" in result.description
