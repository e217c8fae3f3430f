"""The benchmark tooling: the synthetic registry is the real format, and the benchmark script runs.

No timings are checked here (they belong to benchmarks/load_benchmark.py); only that the tools work.
"""

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import psycopg
import pytest

from benchmarks.generate_registry import BAD_ROW_CHANGES, write_registry
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE

ROOT = Path(__file__).resolve().parents[1]


def test_generated_registry_has_the_real_header_and_loads_without_rejects(tmp_path, warehouse_url):
    path = tmp_path / "Covid19Casos.zip"
    summary = write_registry(path, 3_000, seed=7, duplicate_share=0.01)
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["Covid19Casos.csv"]
        header = archive.open("Covid19Casos.csv").readline()
    assert header == REAL_SAMPLE.read_bytes().split(b"\n", 1)[0] + b"\n"
    assert summary["duplicates"] > 0

    report = load_cases(warehouse_url, path, source_sha256="generated")

    assert report.rows_read == 3_000
    assert report.rows_rejected == 0
    assert report.duplicate_rows == summary["duplicates"]
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("SELECT count(*) FROM covid.cases").fetchone()[0] == 3_000 - summary["duplicates"]


def test_generated_bad_rows_are_the_planned_rejects(tmp_path, warehouse_url):
    path = tmp_path / "Covid19Casos.zip"
    bad = 2 * len(BAD_ROW_CHANGES)
    summary = write_registry(path, 2_000, seed=3, bad_rows=bad)

    report = load_cases(warehouse_url, path, source_sha256="generated-with-bad-rows")

    assert report.rows_rejected == summary["bad_rows"] == bad
    assert report.rows_loaded == 2_000 - bad - summary["duplicates"]
    with psycopg.connect(warehouse_url) as conn:
        columns = conn.execute("SELECT column_name FROM covid.rejected_cases").fetchall()
    planned = {next(iter(change)) for change in BAD_ROW_CHANGES} - {"ultima_actualizacion"}
    # The cut-short line is rejected for its field count, which names no column.
    assert {c for (c,) in columns} == planned | {None}


@pytest.mark.slow
def test_benchmark_script_prints_the_figures_for_a_small_registry(tmp_path, warehouse_url):
    source = tmp_path / "Covid19Casos.zip"
    summary = write_registry(source, 2_000, seed=1)
    env = os.environ | {"COVID_DATABASE_URL": warehouse_url, "PYTHONPATH": str(ROOT)}

    printed = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "load_benchmark.py"),
            "--rows",
            "2000",
            "--zip",
            str(source),
            "--seed-method",
            "--data",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout

    for label in ("\\copy: psql, raw CSV", "ours: cleaned_cases", "seed: pandas", "daily_aggregates on ours"):
        line = next(line for line in printed.splitlines() if line.startswith(label))
        assert re.search(r"\d+\.\d\d\s", line), line  # seconds, then rows/s, the ratio and peak RSS
    for ratio in ("ours vs \\copy (\\copy seconds / ours): ", "seed/ours time", "daily_aggregates/load time"):
        assert ratio in printed
    loaded = 2_000 - summary["duplicates"]
    assert f"rows in covid.cases: {loaded:,}" in printed and "\\copy read 2,000" in printed
    assert re.search(r"^disk: database [\d,]+ MB \(covid.cases [\d,]+ MB\)$", printed, re.MULTILINE), printed
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("SELECT count(*) FROM covid.cases").fetchone()[0] == loaded
        assert conn.execute("SELECT count(*) FROM bench.cases_seed_method").fetchone()[0] == 2_000
        # the reference's table is dropped once timed: no second copy of the data on disk
        assert conn.execute("SELECT to_regclass('bench.raw_copy')").fetchone() == (None,)
    assert not list(tmp_path.glob("**/*.csv")), "the given zip's CSV is unzipped for the run only"
