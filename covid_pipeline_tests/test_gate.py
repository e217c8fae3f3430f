"""The load's gate (ingest/gate.py): a registry or georef file that parses but looks wrong is refused before it
replaces anything, naming the figures and the setting that would let it through; within the limits it loads.

Each refusal leaves covid.cases (or the georef table) exactly as it was, so the true file that follows loads
against the right baseline.
"""

import pytest

from covid_pipeline.cli import sample_sources
from covid_pipeline.ingest.gate import LoadLimits, LoadRefused
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE, real_rows, write_registry
from covid_pipeline_tests.helpers.short_registry import UP_TO_AGGREGATES, base_lines, checksums, registry_zip
from covid_pipeline_tests.helpers.warehouse import failure_of, fingerprint, query, refusal, run_graph

SAMPLE = sample_sources()
SAMPLE_ROWS = len(real_rows())
PUBLISHED = real_rows(1)[0]["ultima_actualizacion"]  # 2020-11-23


@pytest.fixture
def loaded(warehouse_url):
    """A warehouse holding the real 2020-11-23 sample (10,075 cases), and the fingerprint of covid.cases."""
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="real")
    return warehouse_url, fingerprint(warehouse_url, "covid.cases")


def rekeyed_twice(tmp_path):
    """Every case of the sample twice, the copy under new ids: nothing but the row count says it is wrong."""
    rows = real_rows()
    copies = [r | {"id_evento_caso": str(int(r["id_evento_caso"]) + 50_000_000)} for r in rows]
    return write_registry(tmp_path / "Covid19Casos.zip", rows + copies)


def dated(tmp_path, day: str):
    """The sample as published on another day."""
    return write_registry(
        tmp_path / f"Covid19Casos-{day}.zip", [r | {"ultima_actualizacion": day} for r in real_rows()]
    )


# --- growth ------------------------------------------------------------------------------------------


def test_a_registry_with_every_case_twice_is_refused_and_the_true_file_still_loads(loaded, tmp_path):
    url, before = loaded
    with pytest.raises(LoadRefused) as refused:
        load_cases(url, rekeyed_twice(tmp_path), source_sha256="twice", limits=LoadLimits(max_row_growth=0.5))
    message = str(refused.value)
    assert f"{2 * SAMPLE_ROWS:,} cases, 100.0% more than the {SAMPLE_ROWS:,} of the previous load" in message
    assert "COVID_MAX_ROW_GROWTH" in message
    assert fingerprint(url, "covid.cases") == before
    # the doubled file never became the baseline: the true publication loads under the default drop limit
    report = load_cases(url, REAL_SAMPLE, source_sha256="real again", limits=LoadLimits(max_row_drop=0.1))
    assert report.rows_loaded == SAMPLE_ROWS


def test_growth_within_the_limit_loads_and_the_setting_lets_more_through(loaded, tmp_path):
    url, _ = loaded
    grown = write_registry(
        tmp_path / "grown.zip",
        real_rows() + [r | {"id_evento_caso": str(90_000_000 + i)} for i, r in enumerate(real_rows(2_000))],
    )
    assert load_cases(
        url, grown, source_sha256="grown", limits=LoadLimits(max_row_growth=0.5)
    ).rows_loaded == (SAMPLE_ROWS + 2_000)
    # and a relaxed limit accepts a registry that doubles
    report = load_cases(
        url, rekeyed_twice(tmp_path), source_sha256="twice", limits=LoadLimits(max_row_growth=3)
    )
    assert report.rows_loaded == 2 * SAMPLE_ROWS


def test_the_graph_refuses_a_doubled_registry_with_the_default_settings(sample_copy, tmp_path):
    before = fingerprint(sample_copy, "covid.cases")
    twice = rekeyed_twice(tmp_path)
    result = run_graph(sample_copy, tmp_path, cases=twice, raise_on_error=False)
    step, message = failure_of(result)
    assert step == "cleaned_cases" and "100.0% more than the" in message and "COVID_MAX_ROW_GROWTH" in message
    assert "covid.cases was left as it was" in message
    assert fingerprint(sample_copy, "covid.cases") == before


def departments_cut_to(tmp_path, keep: int):
    with open(SAMPLE["COVID_DEPARTMENTS_URL"], encoding="utf-8", newline="") as handle:
        lines = handle.readlines()
    path = tmp_path / "georef" / "departamentos.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(lines[: keep + 1]), encoding="utf-8")
    return path


def test_a_georef_file_much_larger_than_its_table_is_refused_naming_the_setting(sample_copy, tmp_path):
    """covid.departments holds 400 rows (a shrink accepted once); the full 529 is 32% more."""
    selection = ["raw_csv_s3", "departments"]
    shrunk = departments_cut_to(tmp_path, 400)
    relaxed = QualityResource(max_reference_row_drop=1.0)
    assert run_graph(sample_copy, tmp_path, departments=shrunk, quality=relaxed, selection=selection).success
    before = fingerprint(sample_copy, "covid.departments")
    result = run_graph(sample_copy, tmp_path, selection=selection, raise_on_error=False)
    step, message = failure_of(result)
    assert step == "departments"
    assert "529 rows, 32.2% more than the 400 covid.departments holds" in message
    assert "COVID_MAX_REFERENCE_ROW_GROWTH" in message and "covid.departments was left as it was" in message
    assert fingerprint(sample_copy, "covid.departments") == before
    grown = QualityResource(max_reference_row_growth=0.5)
    assert run_graph(sample_copy, tmp_path, quality=grown, selection=selection).success
    assert query(sample_copy, "SELECT count(*) FROM covid.departments") == [(529,)]


# --- duplicates ---------------------------------------------------------------------------------------


def test_a_file_of_99_percent_duplicate_rows_is_refused_even_as_a_first_load(warehouse_url, tmp_path):
    rows = real_rows(100)
    repeated = write_registry(tmp_path / "Covid19Casos.zip", [r for r in rows for _ in range(100)])
    with pytest.raises(LoadRefused) as refused:
        load_cases(warehouse_url, repeated, source_sha256="dups", limits=LoadLimits(max_duplicate_share=0.01))
    message = str(refused.value)
    assert "9,900 of 10,000 accepted rows (99.0%) repeat an id_evento_caso" in message
    assert "COVID_MAX_DUPLICATE_SHARE" in message
    assert query(warehouse_url, "SELECT to_regclass('covid.cases'), count(*) FROM covid.loads") == [(None, 0)]
    # a relaxed limit loads it, each id once
    report = load_cases(
        warehouse_url, repeated, source_sha256="dups", limits=LoadLimits(max_duplicate_share=1)
    )
    assert (report.rows_loaded, report.duplicate_rows) == (100, 9_900)


def test_a_few_duplicates_stay_under_the_default_limit(warehouse_url, tmp_path):
    rows = real_rows(1_000)
    some = write_registry(tmp_path / "Covid19Casos.zip", rows + rows[:5])
    limits = LoadLimits(max_duplicate_share=QualityResource().max_duplicate_share)
    assert load_cases(warehouse_url, some, source_sha256="few", limits=limits).duplicate_rows == 5


# --- an older publication -------------------------------------------------------------------------------


def test_an_older_publication_is_refused_naming_both_dates_and_the_setting(loaded, tmp_path):
    url, before = loaded
    older = dated(tmp_path, "2020-11-22")
    with pytest.raises(LoadRefused) as refused:
        load_cases(url, older, source_sha256="older", limits=LoadLimits(allow_older_publication=False))
    message = str(refused.value)
    assert (
        f"its publication date, 2020-11-22 (the most common ultima_actualizacion of its rows), is older than {PUBLISHED}"
        in message
    )
    assert "roll the tables and the reports back 1 day(s)" in message
    assert "COVID_ALLOW_OLDER_PUBLICATION=yes" in message
    assert fingerprint(url, "covid.cases") == before
    # the same day again, or a later one, loads
    for day in (PUBLISHED, "2020-11-24"):
        assert load_cases(
            url, dated(tmp_path, day), source_sha256=day, limits=LoadLimits(allow_older_publication=False)
        )
    # and going back on purpose is allowed by the setting
    report = load_cases(url, older, source_sha256="older", limits=LoadLimits(allow_older_publication=True))
    assert str(report.last_updated) == "2020-11-22"


def test_the_graph_refuses_an_older_publication_unless_the_setting_allows_it(
    sample_copy, tmp_path, monkeypatch
):
    before = fingerprint(sample_copy, "covid.cases")
    older = dated(tmp_path, "2020-11-22")
    result = run_graph(sample_copy, tmp_path, cases=older, raise_on_error=False)
    step, message = failure_of(result)
    assert step == "cleaned_cases" and "is older than 2020-11-23" in message
    assert fingerprint(sample_copy, "covid.cases") == before
    # the setting as a deployment sets it: an env var, read by the quality resource
    monkeypatch.setenv("COVID_ALLOW_OLDER_PUBLICATION", "Yes")
    assert run_graph(sample_copy, tmp_path, cases=older, quality=QualityResource.from_env()).success
    assert query(sample_copy, "SELECT DISTINCT last_updated::text FROM covid.cases") == [("2020-11-22",)]


# --- columns the reports count by ----------------------------------------------------------------------


def test_a_registry_with_fecha_apertura_empty_in_every_row_is_refused_naming_it(sample_copy, tmp_path):
    before = fingerprint(sample_copy, "covid.cases")
    empty = write_registry(tmp_path / "Covid19Casos.zip", [r | {"fecha_apertura": ""} for r in real_rows()])
    result = run_graph(sample_copy, tmp_path, cases=empty, raise_on_error=False)
    step, message = failure_of(result)
    assert step == "cleaned_cases"
    assert f"empty fecha_apertura in {SAMPLE_ROWS:,} of {SAMPLE_ROWS:,} accepted rows (100.0%)" in message
    assert "COVID_MAX_EMPTY_SHARE" in message
    assert fingerprint(sample_copy, "covid.cases") == before


def test_columns_empty_in_a_few_rows_load_and_each_column_over_the_limit_is_named(warehouse_url, tmp_path):
    rows = real_rows(1_000)
    few = [r | {"sexo": ""} if i < 50 else r for i, r in enumerate(rows)]  # 5%
    limits = LoadLimits(max_empty_share=0.1)
    assert load_cases(
        warehouse_url, write_registry(tmp_path / "few.zip", few), source_sha256="few", limits=limits
    )
    many = [
        r | {"clasificacion_resumen": "", "residencia_provincia_id": ""} if i < 300 else r
        for i, r in enumerate(rows)
    ]
    with pytest.raises(LoadRefused) as refused:
        load_cases(
            warehouse_url, write_registry(tmp_path / "many.zip", many), source_sha256="many", limits=limits
        )
    message = str(refused.value)
    assert "clasificacion_resumen in 300 of 1,000 accepted rows (30.0%)" in message
    assert "residencia_provincia_id in 300 of 1,000 accepted rows (30.0%)" in message


def test_the_real_sample_passes_every_gate_at_the_default_settings(warehouse_url):
    quality = QualityResource()
    limits = LoadLimits(
        max_rejected_share=quality.max_rejected_share,
        max_duplicate_share=quality.max_duplicate_share,
        max_empty_share=quality.max_empty_share,
    )
    assert (
        load_cases(warehouse_url, REAL_SAMPLE, source_sha256="real", limits=limits).rows_loaded == SAMPLE_ROWS
    )


@pytest.mark.parametrize(("source", "keep"), [("COVID_PROVINCES_URL", 1), ("COVID_DEPARTMENTS_URL", 29)])
def test_a_georef_file_that_loses_rows_is_refused_naming_the_setting(short_warehouse, source, keep):
    url, folder = short_warehouse
    before = checksums(url)
    table = "provinces" if "PROVINCES" in source else "departments"
    cut = folder / "georef" / SAMPLE[source].rsplit("/", 1)[-1]
    cut.parent.mkdir()
    with open(SAMPLE[source], encoding="utf-8") as handle:
        cut.write_text("".join(handle.readlines()[:keep]), encoding="utf-8")
    unchanged = registry_zip(folder, base_lines())
    result = run_graph(
        url, folder, cases=unchanged, **{table: cut}, selection=UP_TO_AGGREGATES, raise_on_error=False
    )
    message = refusal(result, table)
    assert f"covid.{table}" in message and f"covid.{table} was left as it was" in message
    assert "COVID_MAX_REFERENCE_ROW_DROP" in message or "no rows after the header" in message
    assert checksums(url) == before
    # the setting lets a real shrink through
    relaxed = QualityResource(max_reference_row_drop=1.0)
    if keep > 1:
        assert run_graph(
            url, folder, cases=unchanged, **{table: cut}, quality=relaxed, selection=UP_TO_AGGREGATES
        ).success
        assert query(url, f"SELECT count(*) FROM covid.{table}")[0][0] == keep - 1
