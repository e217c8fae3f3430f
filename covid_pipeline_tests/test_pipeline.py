"""The whole asset graph end to end, with real sources: local files, loopback HTTP, S3 (moto)."""

import csv
import io
import zipfile
from pathlib import Path

import boto3
import pytest

from covid_pipeline.cli import SAMPLE, sample_sources
from covid_pipeline.definitions import defs
from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline.resources.sources import SourcesResource
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.registry import count_independently, row, write_registry
from covid_pipeline_tests.helpers.warehouse import metadata_of, query, run_graph


def test_definitions_load_with_the_whole_graph():
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    assert {"raw_csv_s3", "provinces", "departments", "cleaned_cases", "daily_aggregates"} <= keys
    assert defs.resolve_schedule_def("daily_refresh").cron_schedule == "0 7 * * *"
    upstream = (
        defs.resolve_asset_graph()
        .get(
            next(
                k
                for k in defs.resolve_asset_graph().get_all_asset_keys()
                if k.to_user_string() == "daily_aggregates"
            )
        )
        .parent_keys
    )
    assert {k.to_user_string() for k in upstream} == {"cleaned_cases", "department_crosswalk"}


def test_the_bundled_sample_is_the_real_format():
    with zipfile.ZipFile(Path(str(SAMPLE / "Covid19Casos.zip"))) as archive:
        assert archive.namelist() == ["Covid19Casos.csv"]
        data = archive.read("Covid19Casos.csv")
    real = (REAL_DATA / "covid19casos_tp_covid_2020-11-23_utf8_repaired.csv").read_bytes()
    assert data == real
    header = data.split(b"\n", 1)[0].decode()
    assert header == ",".join(f'"{c}"' for c in SOURCE_NAMES)
    assert (
        Path(str(SAMPLE / "provincias.csv")).read_bytes()
        == (REAL_DATA / "georef_provincias_santif1.csv").read_bytes()
    )


def test_the_graph_runs_on_the_bundled_sample(database_url, tmp_path):
    sources = sample_sources()
    result = run_graph(
        database_url,
        tmp_path / "raw",
        sources["COVID_CASES_URL"],
        sources["COVID_PROVINCES_URL"],
        sources["COVID_DEPARTMENTS_URL"],
    )
    assert result.success
    cases = metadata_of(result, "cleaned_cases")
    assert (cases["rows_read"], cases["rows_loaded"], cases["rows_rejected"], cases["duplicate_rows"]) == (
        10_075,
        10_075,
        0,
        0,
    )
    assert cases["last_updated"] == "2020-11-23"
    assert query(database_url, "SELECT count(*) FROM covid.provinces") == [(24,)]
    assert query(database_url, "SELECT count(*) FROM covid.departments") == [(529,)]
    assert query(database_url, "SELECT name FROM covid.departments WHERE department_id = 6427") == [
        ("La Matanza",)
    ]
    raw = metadata_of(result, "raw_csv_s3")
    assert raw["cases_sha256"] and raw["cases_bytes"] == Path(sources["COVID_CASES_URL"]).stat().st_size


def test_aggregates_equal_an_independent_count_of_the_input(database_url, tmp_path):
    sample = Path(sample_sources()["COVID_CASES_URL"])
    expected = count_independently(sample)
    result = run_graph(database_url, tmp_path / "raw", str(sample), *list(sample_sources().values())[1:])
    assert result.success
    [totals] = query(
        database_url,
        "SELECT sum(notified), sum(confirmed), sum(deaths), sum(icu), sum(ventilated) FROM covid.daily_aggregates",
    )
    assert (
        dict(zip(("notified", "confirmed", "deaths", "icu", "ventilated"), totals, strict=True)) == expected
    )
    assert expected["confirmed"] > 1000 and expected["deaths"] > 10  # the sample exercises every count
    # one day and place, counted from the text: cases opened 2020-06-01 in La Matanza (06 / 427)
    with zipfile.ZipFile(sample) as archive:
        records = list(csv.DictReader(io.StringIO(archive.read("Covid19Casos.csv").decode())))
    la_matanza = [
        r
        for r in records
        if (r["fecha_apertura"], r["residencia_provincia_id"], r["residencia_departamento_id"])
        == ("2020-06-01", "06", "427")
    ]
    assert query(
        database_url,
        "SELECT notified, confirmed FROM covid.daily_aggregates "
        "WHERE date = '2020-06-01' AND province_id = 6 AND department_id = 427",
    ) == [(len(la_matanza), sum(r["clasificacion_resumen"] == "Confirmado" for r in la_matanza))]
    assert len(la_matanza) > 10


def test_re_running_the_graph_is_idempotent(database_url, tmp_path):
    sources = list(sample_sources().values())
    first = run_graph(database_url, tmp_path / "raw", *sources)
    snapshot = query(
        database_url,
        "SELECT md5(string_agg(t::text, ',' ORDER BY date, province_id, department_id)) "
        "FROM covid.daily_aggregates t",
    )
    second = run_graph(database_url, tmp_path / "raw", *sources)
    assert first.success and second.success
    assert metadata_of(second, "cleaned_cases")["unchanged_source"] is True
    assert metadata_of(second, "raw_csv_s3")["cases_new_content"] is False
    assert (
        query(
            database_url,
            "SELECT md5(string_agg(t::text, ',' ORDER BY date, province_id, department_id)) "
            "FROM covid.daily_aggregates t",
        )
        == snapshot
    )
    assert query(database_url, "SELECT count(*) FROM covid.cases") == [(10_075,)]
    assert query(database_url, "SELECT count(*) FROM covid.loads") == [(1,)]


def test_sources_over_http_and_raw_store_on_s3(database_url, http_server, s3_bucket, tmp_path):
    cases = write_registry(tmp_path / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 301)])
    urls = [
        http_server.publish("Covid19Casos.zip", cases.read_bytes()),
        http_server.publish("provincias.csv", (REAL_DATA / "georef_provincias_santif1.csv").read_bytes()),
        http_server.publish(
            "departamentos.csv", (REAL_DATA / "georef_departamentos_msastre73.csv").read_bytes()
        ),
    ]
    result = run_graph(database_url, f"s3://{s3_bucket}/raw", *urls)
    assert result.success
    # the reports store is raw-reports/ in the same bucket
    listing = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="raw/")
    keys = sorted(o["Key"] for o in listing["Contents"])
    assert "raw/manifest.json" in keys and len(keys) == 4
    assert any(k.startswith("raw/cases/") and k.endswith(".zip") for k in keys)
    raw = metadata_of(result, "raw_csv_s3")
    assert raw["cases_etag"].startswith('"') and raw["cases_last_modified"].endswith("GMT")
    assert query(database_url, "SELECT count(*) FROM covid.cases") == [(300,)]
    # unchanged content is not stored again, and the cases load is skipped
    again = run_graph(database_url, f"s3://{s3_bucket}/raw", *urls)
    assert len(boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="raw/")["Contents"]) == 4
    assert metadata_of(again, "cleaned_cases")["unchanged_source"] is True


def test_a_download_cut_mid_way_is_resumed(http_server, tmp_path):
    data = write_registry(
        tmp_path / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 3001)]
    ).read_bytes()
    url = http_server.publish("Covid19Casos.zip", data)
    http_server.cut_after["Covid19Casos.zip"] = (len(data) // 3, 2)
    sources = SourcesResource(cases_url=url, backoff_seconds=0.01)
    fetched = sources.fetch("cases", tmp_path)
    assert fetched.path.read_bytes() == data
    ranges = [headers.get("Range") for method, name, headers in http_server.requests if method == "GET"]
    assert ranges == [None, f"bytes={len(data) // 3}-", f"bytes={2 * (len(data) // 3)}-"]


def test_a_missing_source_fails_with_a_clear_message(database_url, tmp_path):
    sources = sample_sources()
    result = run_graph(
        database_url,
        tmp_path / "raw",
        str(tmp_path / "nope.zip"),
        sources["COVID_PROVINCES_URL"],
        sources["COVID_DEPARTMENTS_URL"],
        raise_on_error=False,
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "nope.zip does not exist" in str(failure.step_failure_data.error.message) + str(
        failure.step_failure_data.error.cause and failure.step_failure_data.error.cause.message
    )


@pytest.mark.parametrize(
    "georef", ["georef_provincias_tp_covid_as_committed.csv", "georef_provincias_santif1.csv"]
)
def test_georef_provinces_of_both_releases_load_with_repaired_names(database_url, tmp_path, georef):
    sources = sample_sources()
    result = run_graph(
        database_url,
        tmp_path / "raw",
        sources["COVID_CASES_URL"],
        str(REAL_DATA / georef),
        sources["COVID_DEPARTMENTS_URL"],
    )
    assert result.success
    assert query(database_url, "SELECT name FROM covid.provinces WHERE province_id = 2") == [
        ("Ciudad Autónoma de Buenos Aires",)
    ]
    assert query(database_url, "SELECT count(*) FROM covid.provinces WHERE name LIKE '%Ã%'") == [(0,)]


def test_a_registry_re_saved_as_windows_1252_loads_with_its_accents(database_url, tmp_path):
    rows = [row(id_evento_caso=str(i), residencia_departamento_nombre="Cañuelas") for i in range(1, 51)]
    cases = write_registry(tmp_path / "src" / "Covid19Casos.csv", rows, encoding="cp1252", newline="\r\n")
    result = run_graph(database_url, tmp_path / "raw", str(cases), *list(sample_sources().values())[1:])
    assert result.success
    assert metadata_of(result, "cleaned_cases")["encoding"] == "windows-1252"
    assert query(database_url, "SELECT DISTINCT residence_department, age_unit FROM covid.cases") == [
        ("Cañuelas", "Años")
    ]
