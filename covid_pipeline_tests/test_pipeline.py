"""The whole asset graph end to end, with real sources: local files, loopback HTTP, S3 (moto)."""

import hashlib
import json
import zipfile
from pathlib import Path

import boto3
import pytest

from covid_pipeline.cli import SAMPLE, sample_sources
from covid_pipeline.definitions import defs
from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.registry import count_independently, read_records, row, write_registry
from covid_pipeline_tests.helpers.warehouse import fingerprint, metadata_of, query, run_graph


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


def test_the_graph_runs_on_the_bundled_sample(sample_run, sample_warehouse):
    sources = sample_sources()
    records = read_records(Path(sources["COVID_CASES_URL"]))
    cases = metadata_of(sample_run.result, "cleaned_cases")
    assert (cases["rows_read"], cases["rows_loaded"], cases["rows_rejected"], cases["duplicate_rows"]) == (
        len(records),
        len(records),
        0,
        0,
    )
    assert cases["last_updated"] == max(r["ultima_actualizacion"] for r in records)
    provinces, departments = (
        read_records(Path(sources[f"COVID_{name}_URL"])) for name in ("PROVINCES", "DEPARTMENTS")
    )
    assert query(sample_warehouse, "SELECT count(*) FROM covid.provinces") == [(len(provinces),)]
    assert query(sample_warehouse, "SELECT count(*) FROM covid.departments") == [(len(departments),)]
    la_matanza = next(d for d in departments if d["nombre"] == "La Matanza")
    assert query(
        sample_warehouse, "SELECT department_id, name FROM covid.departments WHERE name = 'La Matanza'"
    ) == [(int(la_matanza["id"]), "La Matanza")]
    assert query(sample_warehouse, "SELECT min(case_id), max(case_id) FROM covid.cases") == [
        (min(int(r["id_evento_caso"]) for r in records), max(int(r["id_evento_caso"]) for r in records))
    ]
    raw = metadata_of(sample_run.result, "raw_csv_s3")
    for name in ("cases", "provinces", "departments"):
        data = Path(sources[f"COVID_{name.upper()}_URL"]).read_bytes()
        assert raw[f"{name}_sha256"] == hashlib.sha256(data).hexdigest()
        assert raw[f"{name}_bytes"] == len(data)


def test_aggregates_equal_an_independent_count_of_the_input(sample_warehouse):
    sample = Path(sample_sources()["COVID_CASES_URL"])
    expected = count_independently(sample)
    [totals] = query(
        sample_warehouse,
        "SELECT sum(notified), sum(confirmed), sum(deaths), sum(icu), sum(ventilated) FROM covid.daily_aggregates",
    )
    assert (
        dict(zip(("notified", "confirmed", "deaths", "icu", "ventilated"), totals, strict=True)) == expected
    )
    assert expected["confirmed"] > 1000 and expected["deaths"] > 10  # the sample exercises every count
    # one day and place, counted from the text: cases opened 2020-06-01 in La Matanza (06 / 427)
    la_matanza = [
        r
        for r in read_records(sample)
        if (r["fecha_apertura"], r["residencia_provincia_id"], r["residencia_departamento_id"])
        == ("2020-06-01", "06", "427")
    ]
    assert query(
        sample_warehouse,
        "SELECT notified, confirmed FROM covid.daily_aggregates "
        "WHERE date = '2020-06-01' AND province_id = 6 AND department_id = 427",
    ) == [(len(la_matanza), sum(r["clasificacion_resumen"] == "Confirmado" for r in la_matanza))]
    assert len(la_matanza) > 10


def test_re_running_the_graph_is_idempotent(sample_copy, tmp_path):
    snapshots = {
        t: fingerprint(sample_copy, t) for t in ("covid.cases", "covid.daily_aggregates", "covid.loads")
    }
    again = run_graph(sample_copy, tmp_path)
    assert again.success
    assert metadata_of(again, "cleaned_cases")["unchanged_source"] is True
    assert {t: fingerprint(sample_copy, t) for t in snapshots} == snapshots


def test_sources_over_http_and_raw_store_on_s3(database_url, http_server, s3_bucket, tmp_path):
    cases = write_registry(tmp_path / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 301)])
    sources = {
        "cases": http_server.publish("Covid19Casos.zip", cases.read_bytes()),
        "provinces": http_server.publish(
            "provincias.csv", (REAL_DATA / "georef_provincias_santif1.csv").read_bytes()
        ),
        "departments": http_server.publish(
            "departamentos.csv", (REAL_DATA / "georef_departamentos_msastre73.csv").read_bytes()
        ),
    }
    stores = {"raw_store": f"s3://{s3_bucket}/raw", "reports_store": f"s3://{s3_bucket}/reports"}
    result = run_graph(database_url, tmp_path, **sources, **stores)
    assert result.success
    listing = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="raw/")
    keys = sorted(o["Key"] for o in listing["Contents"])
    # each source under <source>/<sha256>.<ext>, beside the manifest naming it; its provenance in the metadata
    published = {
        name: (http_server.root / url.rsplit("/", 1)[1]).read_bytes() for name, url in sources.items()
    }
    hashes = {name: hashlib.sha256(data).hexdigest() for name, data in published.items()}
    extensions = {"cases": ".zip", "provinces": ".csv", "departments": ".csv"}
    assert keys == sorted(["raw/manifest.json", *(f"raw/{n}/{hashes[n]}{extensions[n]}" for n in sources)])
    manifest = json.loads(
        boto3.client("s3").get_object(Bucket=s3_bucket, Key="raw/manifest.json")["Body"].read()
    )
    assert {n: e["key"] for n, e in manifest.items()} == {
        n: f"{n}/{hashes[n]}{extensions[n]}" for n in sources
    }
    raw = metadata_of(result, "raw_csv_s3")
    for name, url in sources.items():
        assert (raw[f"{name}_url"], raw[f"{name}_sha256"]) == (url, hashes[name])
        assert raw[f"{name}_bytes"] == len(published[name])
    assert raw["cases_etag"].startswith('"') and raw["cases_last_modified"].endswith("GMT")
    assert query(database_url, "SELECT count(*) FROM covid.cases") == [(300,)]
    # unchanged content is not stored again, and the cases load is skipped
    again = run_graph(database_url, tmp_path, **sources, **stores)
    assert len(boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="raw/")["Contents"]) == 4
    assert metadata_of(again, "cleaned_cases")["unchanged_source"] is True


def test_a_missing_source_fails_with_a_clear_message(database_url, tmp_path):
    result = run_graph(database_url, tmp_path, cases=tmp_path / "nope.zip", raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "nope.zip does not exist" in str(failure.step_failure_data.error.message) + str(
        failure.step_failure_data.error.cause and failure.step_failure_data.error.cause.message
    )


@pytest.mark.parametrize(
    "georef", ["georef_provincias_tp_covid_as_committed.csv", "georef_provincias_santif1.csv"]
)
def test_georef_provinces_of_both_releases_load_with_repaired_names(sample_copy, tmp_path, georef):
    result = run_graph(
        sample_copy, tmp_path, provinces=REAL_DATA / georef, selection=["raw_csv_s3", "provinces"]
    )
    assert result.success
    assert query(sample_copy, "SELECT name FROM covid.provinces WHERE province_id = 2") == [
        ("Ciudad Autónoma de Buenos Aires",)
    ]
    assert query(sample_copy, "SELECT count(*) FROM covid.provinces WHERE name LIKE '%Ã%'") == [(0,)]


def test_force_in_the_run_config_reloads_an_unchanged_registry(sample_copy, tmp_path):
    before = fingerprint(sample_copy, "covid.cases")
    [(loads,)] = query(sample_copy, "SELECT count(*) FROM covid.loads")
    forced = run_graph(
        sample_copy, tmp_path, run_config={"ops": {"cleaned_cases": {"config": {"force": True}}}}
    )
    assert forced.success
    cases = metadata_of(forced, "cleaned_cases")
    assert cases["unchanged_source"] is False
    assert cases["rows_loaded"] == before[0]
    assert query(sample_copy, "SELECT count(*) FROM covid.loads") == [(loads + 1,)]
    assert query(
        sample_copy,
        "SELECT max(run_id) FROM covid.loads WHERE load_id = (SELECT max(load_id) FROM covid.loads)",
    ) == [(forced.run_id,)]
    assert fingerprint(sample_copy, "covid.cases") == before  # the same file, the same rows
