"""Asset checks and the load's gate: figures checked against the input, failures that stop what follows."""

import csv
import zipfile
from datetime import date
from pathlib import Path

import pytest

from covid_pipeline.cli import sample_sources
from covid_pipeline.ingest.gate import LoadLimits, LoadRefused
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline_tests.helpers.places import expected_georef_id, georef_departments
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE, read_records, real_rows, row, write_registry
from covid_pipeline_tests.helpers.short_registry import BASE_ROWS, changed_line, line_of, rejects, run_changed
from covid_pipeline_tests.helpers.warehouse import (
    checks_of,
    failure_of,
    materialized,
    query,
    run_graph,
)

SAMPLE = sample_sources()


def test_every_check_passes_on_the_bundled_sample_with_figures_from_the_files(sample_copy, tmp_path):
    result = run_graph(sample_copy, tmp_path)  # the checks again, on the loaded sample
    assert result.success
    checks = checks_of(result)
    assert set(checks) == {
        "case_ids_unique",
        "row_count_kept",
        "rejected_share_under_limit",
        "dates_in_range",
        "categorical_values_known",
        "codes_known_to_georef",
        "rules_match",
        "totals_match_cases",
        "plausible_notification_delays",
    }
    assert all(c.passed for c in checks.values())
    # the placements, worked out with the csv module from the registry and georef files themselves
    with zipfile.ZipFile(SAMPLE["COVID_CASES_URL"]) as archive:
        cases = list(csv.DictReader(archive.read("Covid19Casos.csv").decode().splitlines()))
    georef = georef_departments(Path(SAMPLE["COVID_DEPARTMENTS_URL"]))
    specified = [
        r for r in cases if r["residencia_provincia_id"] != "99" and r["residencia_departamento_id"] != "0"
    ]
    places = [(int(r["residencia_provincia_id"]), int(r["residencia_departamento_id"])) for r in specified]
    unmatched = [p for p in places if expected_georef_id(*p, georef) is None]
    by_exception = [p for p in places if expected_georef_id(*p, georef) != p[0] * 1000 + p[1]]
    codes = {k: v.value for k, v in checks["codes_known_to_georef"].metadata.items()}
    assert codes["department_unmatched"] == len(unmatched) == 0  # what remains after the crosswalk
    assert codes["department_placed_by_exception"] == len(by_exception) > 800  # CABA's comunas, at least
    assert codes["department_unspecified"] == len(cases) - len(specified)
    assert codes["province_unknown"] == 0
    assert codes["province_unspecified"] == sum(r["residencia_provincia_id"] == "99" for r in cases)
    assert codes["most_frequent_unmatched_departments"].count("\n") == 1  # the table's header only
    dates = {k: v.value for k, v in checks["dates_in_range"].metadata.items()}
    assert dates["range"] == "2020-01-01 .. 2020-11-23" and dates["outside_range"] == 0


def test_dates_outside_the_range_warn_without_stopping_the_graph(database_url, tmp_path):
    rows = [row(id_evento_caso=str(i)) for i in range(1, 101)]
    rows[0]["fecha_fallecimiento"] = "2031-01-01"  # after the file's ultima_actualizacion: rejected at load
    rows[1]["fecha_inicio_sintomas"] = "2019-12-30"  # before the epidemic
    rows[2]["fecha_internacion"] = "2019-12-31"
    result = run_graph(database_url, tmp_path, cases=write_registry(tmp_path / "Covid19Casos.zip", rows))
    assert result.success
    assert query(database_url, "SELECT line_number, column_name FROM covid.rejected_cases") == [
        (2, "fecha_fallecimiento")
    ]
    check = checks_of(result)["dates_in_range"]
    assert not check.passed and check.severity.value == "WARN"
    assert check.metadata["outside_range"].value == 2
    assert "| fecha_internacion | 1 | 1 |" in check.metadata["by_column"].value.replace(",", "")
    assert "daily_aggregates" in materialized(result)


def test_an_unknown_province_code_is_reported(database_url, tmp_path):
    rows = [row(id_evento_caso=str(i)) for i in range(1, 11)]
    rows[3]["residencia_provincia_id"] = "55"
    rows[5]["residencia_departamento_id"] = "999"  # a department no georef release has
    rows[5]["residencia_departamento_nombre"] = "Nowhere"
    result = run_graph(database_url, tmp_path, cases=write_registry(tmp_path / "Covid19Casos.zip", rows))
    check = checks_of(result)["codes_known_to_georef"]
    assert not check.passed
    assert check.metadata["province_unknown"].value == 1
    assert check.metadata["unknown_province_share"].value == pytest.approx(0.1)
    # what the crosswalk cannot place is listed: the made-up department and the department of province 55
    assert check.metadata["department_unmatched"].value == 2
    unmatched = check.metadata["most_frequent_unmatched_departments"].value
    assert "| 999 | Nowhere | 1 |" in unmatched and "| 55 |" in unmatched


def test_the_gate_refuses_a_file_with_too_many_rejected_rows(warehouse_url, tmp_path):
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="good")
    rows = [row(id_evento_caso=str(i)) for i in range(1, 201)]
    for bad in rows[::10]:
        bad["fecha_apertura"] = "23/11/2020"  # a date format the registry never used
    path = write_registry(tmp_path / "Covid19Casos.zip", rows)
    with pytest.raises(LoadRefused, match=r"20 of 200 rows \(10.0%\).*line 2, fecha_apertura"):
        load_cases(warehouse_url, path, source_sha256="bad", limits=LoadLimits(max_rejected_share=0.05))
    assert query(warehouse_url, "SELECT count(*), count(DISTINCT source_line) FROM covid.cases") == [
        (10_075, 10_075)
    ]
    assert query(warehouse_url, "SELECT count(*) FROM covid.loads") == [(1,)]
    # under a looser limit the same file loads, its rejects kept for inspection
    report = load_cases(warehouse_url, path, source_sha256="bad", limits=LoadLimits(max_rejected_share=0.2))
    assert (report.rows_loaded, report.rows_rejected) == (180, 20)


def test_the_gate_refuses_a_registry_that_shrank(warehouse_url, tmp_path):
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="full")
    truncated = write_registry(
        tmp_path / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 9001)]
    )
    with pytest.raises(LoadRefused, match=r"9,000 cases, 10.7% fewer than the 10,075 .*COVID_MAX_ROW_DROP"):
        load_cases(warehouse_url, truncated, source_sha256="cut", limits=LoadLimits(max_row_drop=0.1))
    assert query(warehouse_url, "SELECT count(*) FROM covid.cases") == [(10_075,)]
    load_cases(warehouse_url, truncated, source_sha256="cut", limits=LoadLimits(max_row_drop=0.2))
    assert query(warehouse_url, "SELECT count(*) FROM covid.cases") == [(9_000,)]


@pytest.mark.parametrize(
    ("fault", "expected", "setting"),
    [
        (
            "shrank",
            "5,000 cases, {drop:.1%} fewer than the {rows:,} of the previous load",
            "COVID_MAX_ROW_DROP",
        ),
        ("rejects", "500 of 5,000 rows (10.0%) break the registry format", "COVID_MAX_REJECTED_SHARE"),
    ],
)
def test_a_refused_load_fails_the_run_naming_the_setting_to_change(
    sample_copy, tmp_path, fault, expected, setting
):
    rows = len(read_records(REAL_SAMPLE))
    cases = [row(id_evento_caso=str(i)) for i in range(1, 5001)]
    if fault == "rejects":  # the share of rejects is judged first
        for bad in cases[::10]:
            bad["fecha_apertura"] = "23/11/2020"  # a date format the registry never used
    registry = write_registry(tmp_path / "refused" / "Covid19Casos.zip", cases)
    result = run_graph(sample_copy, tmp_path, cases=registry, raise_on_error=False)
    step, description = failure_of(result)
    assert step == "cleaned_cases"
    assert description.startswith(
        "Covid19Casos.zip!Covid19Casos.csv: " + expected.format(drop=1 - 5000 / rows, rows=rows)
    ), description
    assert setting in description and "covid.cases was left as it was" in description
    assert "Traceback" not in description
    assert query(sample_copy, "SELECT count(*) FROM covid.cases") == [(rows,)]


def test_thresholds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("COVID_MAX_ROW_DROP", "0.5")
    monkeypatch.setenv("COVID_EARLIEST_DATE", "2019-12-01")
    quality = QualityResource.from_env()
    assert (quality.max_row_drop, quality.earliest_date) == (0.5, "2019-12-01")
    assert quality.max_rejected_share == QualityResource().max_rejected_share


def test_a_far_future_publication_date_is_rejected_and_does_not_lift_the_dates_bound(short_warehouse):
    """Future dates are rejected at load (a row's ultima_actualizacion after the day of the load, a case date
    after its row's ultima_actualizacion); the check's bound stays the publication's date."""
    url, _ = short_warehouse
    lines, _ = changed_line(3, ultima_actualizacion="2099-12-31")
    lines[10] = line_of(real_rows(BASE_ROWS)[9] | {"fecha_apertura": "2030-06-01"})
    lines[20] = line_of(real_rows(BASE_ROWS)[19] | {"fecha_internacion": "2019-06-01"})  # before the epidemic
    result, _ = run_changed(short_warehouse, lines)
    assert result.success
    assert [(r[0], r[1]) for r in rejects(url)] == [(5, "ultima_actualizacion"), (11, "fecha_apertura")]
    check = checks_of(result)["dates_in_range"]
    published = date.fromisoformat(real_rows(1)[0]["ultima_actualizacion"])
    assert check.metadata["range"].value == f"2020-01-01 .. {published}"
    assert check.metadata["outside_range"].value == 1  # the 2019 date: dates before the epidemic are kept


def test_the_warning_checks_warn_past_their_settings_and_not_before(database_url, tmp_path):
    """COVID_MAX_OUT_OF_RANGE_DATE_SHARE, COVID_EARLIEST_DATE, COVID_MAX_UNKNOWN_PROVINCE_SHARE and
    COVID_MAX_UNMATCHED_DEPARTMENT_SHARE decide when dates_in_range and codes_known_to_georef warn."""
    from covid_pipeline.checks.cases import codes_known_to_georef, dates_in_range
    from covid_pipeline.resources.warehouse import WarehouseResource

    rows = [row(id_evento_caso=str(i)) for i in range(1, 101)]
    for unknown in rows[:2]:  # 2% of the cases in a province georef does not have (nor their departments)
        unknown["residencia_provincia_id"] = "55"
    for unmatched in rows[2:32]:  # 30% more in a department no georef release has
        unmatched["residencia_departamento_id"] = "999"
    rows[40]["fecha_inicio_sintomas"] = "2019-12-30"  # two dates before the epidemic's start
    rows[41]["fecha_internacion"] = "2019-12-31"
    registry = write_registry(tmp_path / "Covid19Casos.zip", rows)
    checks = checks_of(run_graph(database_url, tmp_path, cases=registry))
    assert not checks["dates_in_range"].passed and not checks["codes_known_to_georef"].passed
    relaxed = QualityResource(
        max_out_of_range_date_share=0.05, max_unknown_province_share=0.05, max_unmatched_department_share=0.5
    )
    checks = checks_of(
        run_graph(database_url, tmp_path, cases=registry, quality=relaxed, selection=["cleaned_cases"])
    )
    assert checks["dates_in_range"].passed and checks["codes_known_to_georef"].passed
    # each setting on its own
    warehouse = WarehouseResource(database_url=database_url)
    assert not codes_known_to_georef(warehouse, QualityResource(max_unknown_province_share=0.05)).passed
    assert not codes_known_to_georef(warehouse, QualityResource(max_unmatched_department_share=0.5)).passed
    assert codes_known_to_georef(
        warehouse, QualityResource(max_unknown_province_share=0.02, max_unmatched_department_share=0.32)
    ).passed
    earlier = dates_in_range(warehouse, QualityResource(earliest_date="2019-12-01"))
    assert earlier.passed and earlier.metadata["outside_range"].value == 0
    assert earlier.metadata["range"].value == "2019-12-01 .. 2020-11-23"
