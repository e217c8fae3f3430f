"""The open exports: every reporting table as Parquet in the reports store (a folder or S3), latest and per
publication, holding what the table holds with its types."""

import io
from datetime import date
from decimal import Decimal

import boto3
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq

from covid_pipeline.assets.codebook import describe_tables
from covid_pipeline.assets.reporting import MARTS
from covid_pipeline_tests.helpers.warehouse import metadata_of, run_graph


def as_python(value):
    return float(value) if isinstance(value, Decimal) else value


def test_every_mart_is_exported_with_its_rows_and_types(sample_warehouse, tmp_path):
    result = run_graph(sample_warehouse, tmp_path, selection=["exports"], reports_store=tmp_path)
    metadata = metadata_of(result, "exports")
    assert metadata["tables"] == len(MARTS)
    exported = tmp_path / "exports"
    assert sorted(p.name for p in exported.glob("*.parquet")) == sorted(f"{m}.parquet" for m in MARTS)
    described = describe_tables()
    with psycopg.connect(sample_warehouse) as conn:
        for mart in MARTS:
            latest = exported / f"{mart}.parquet"
            assert (exported / "2020-11-23" / f"{mart}.parquet").read_bytes() == latest.read_bytes()
            table = pq.read_table(latest)
            cursor = conn.execute(f"SELECT * FROM reporting.{mart}")
            assert table.column_names == [c.name for c in cursor.description]
            assert sorted(map(tuple, (r.values() for r in table.to_pylist())), key=repr) == sorted(
                (tuple(as_python(v) for v in row) for row in cursor.fetchall()), key=repr
            ), mart
            meta = table.schema.metadata
            assert (
                meta[b"table"] == f"reporting.{mart}".encode()
                and meta[b"registry_published"] == b"2020-11-23"
            )
            # the table's description, as the data dictionary gives it
            assert meta[b"description"].decode() == described[f"reporting.{mart}"]["description"] != ""
    schema = pq.read_schema(exported / "positivity_by_province_week.parquet")
    assert [schema.field(n).type for n in ("province_id", "week_start", "confirmed", "positivity")] == [
        pa.int32(),
        pa.date32(),
        pa.int64(),
        pa.float64(),
    ]
    assert pq.read_table(exported / "latest_update.parquet").to_pylist()[0]["last_updated"] == date(
        2020, 11, 23
    )


def test_the_exports_go_to_s3(sample_warehouse, s3_bucket, tmp_path):
    run_graph(sample_warehouse, tmp_path, selection=["exports"], reports_store=f"s3://{s3_bucket}/reports")
    s3 = boto3.client("s3")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert keys == {f"reports/exports/{m}.parquet" for m in MARTS} | {
        f"reports/exports/2020-11-23/{m}.parquet" for m in MARTS
    }
    body = s3.get_object(Bucket=s3_bucket, Key="reports/exports/incidence_by_province.parquet")["Body"].read()
    rows = pq.read_table(io.BytesIO(body)).to_pylist()
    assert sum(r["population"] or 0 for r in rows) == 45_892_285
