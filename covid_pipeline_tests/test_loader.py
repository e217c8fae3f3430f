"""Loading into the embedded PostgreSQL: COPY, rejects, duplicates, swap, idempotence, failure safety."""

import numpy as np
import psycopg
import pytest

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.loader import SeenIds, load_cases
from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE, format_line, real_rows, row, write_registry
from covid_pipeline_tests.helpers.warehouse import query


def test_the_real_sample_loads_every_row_typed(warehouse_url):
    report = load_cases(warehouse_url, REAL_SAMPLE, source_sha256="real")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected, report.duplicate_rows) == (
        10_075,
        10_075,
        0,
        0,
    )
    assert str(report.last_updated) == "2020-11-23"
    [(count, distinct, first, last)] = query(
        warehouse_url, "SELECT count(*), count(DISTINCT case_id), min(case_id), max(case_id) FROM covid.cases"
    )
    ids = [int(r["id_evento_caso"]) for r in real_rows()]
    assert (count, distinct, first, last) == (len(ids), len(ids), min(ids), max(ids))
    types = dict(
        query(
            warehouse_url,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'covid' AND table_name = 'cases'",
        )
    )
    assert types["case_id"] == "bigint" and types["opened_date"] == "date" and types["deceased"] == "boolean"
    assert types["age_years"] == "integer" and types["residence_province_id"] == "integer"
    [(pk,)] = query(
        warehouse_url,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'covid.cases'::regclass AND contype='p'",
    )
    assert pk == "PRIMARY KEY (case_id)"


def expected_age(record: dict) -> int | None:
    """Whole years: `edad` counts months when edad_años_meses says Meses."""
    if not record["edad"]:
        return None
    return int(record["edad"]) // 12 if record["edad_años_meses"] == "Meses" else int(record["edad"])


def test_the_loaded_values_match_the_source_text(warehouse_url):
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="real")
    source = {r["id_evento_caso"]: r for r in real_rows()}
    loaded = query(
        warehouse_url,
        "SELECT case_id, sex, age_years, opened_date, deceased, residence_province_id, classification, source_line "
        "FROM covid.cases ORDER BY case_id",
    )
    in_months = [
        c for c in loaded if source[str(c[0])]["edad_años_meses"] == "Meses" and source[str(c[0])]["edad"]
    ]
    assert len(in_months) > 5  # the sample has babies, their ages in months
    for case_id, sex, age, opened, deceased, province, classification, line in loaded[::97] + in_months:
        original = source[str(case_id)]
        assert sex == original["sexo"]
        assert age == expected_age(original), original

        assert str(opened) == original["fecha_apertura"]
        assert deceased == (original["fallecido"] == "SI")
        assert province == int(original["residencia_provincia_id"])
        assert classification == original["clasificacion"]
        assert line >= 2


def test_rejected_rows_are_kept_with_line_text_and_reason(warehouse_url, tmp_path):
    rows = [
        row(id_evento_caso="1"),
        row(id_evento_caso="abc"),
        row(id_evento_caso="3", fecha_apertura="2020-13-01"),
    ]
    path = write_registry(tmp_path / "Covid19Casos.zip", rows)
    report = load_cases(warehouse_url, path, source_sha256="x")
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (3, 1, 2)
    rejects = query(
        warehouse_url,
        "SELECT line_number, column_name, reason, raw_line FROM covid.rejected_cases ORDER BY 1",
    )
    assert [(r[0], r[1]) for r in rejects] == [(3, "id_evento_caso"), (4, "fecha_apertura")]
    assert rejects[0][3] == format_line([rows[1][c] for c in SOURCE_NAMES])
    assert "'2020-13-01'" in rejects[1][2]
    # the next load replaces the rejects of the previous one
    load_cases(
        warehouse_url, write_registry(tmp_path / "clean.csv", [row(id_evento_caso="9")]), source_sha256="y"
    )
    assert query(warehouse_url, "SELECT count(*) FROM covid.rejected_cases") == [(0,)]


def test_duplicate_ids_keep_the_last_occurrence_across_chunks(warehouse_url, tmp_path):
    rows = [row(id_evento_caso=str(i), sexo="F") for i in range(1, 1201)]
    rows += [
        row(id_evento_caso="5", sexo="M"),
        row(id_evento_caso="1200", sexo="NR"),
        row(id_evento_caso="5", sexo="NR"),
    ]
    path = write_registry(tmp_path / "dups.csv", rows)
    report = load_cases(warehouse_url, path, source_sha256="d", chunk_bytes=20_000)
    assert (report.rows_read, report.rows_loaded, report.duplicate_rows) == (1203, 1200, 3)
    assert query(
        warehouse_url,
        "SELECT case_id, sex, source_line FROM covid.cases WHERE case_id IN (5, 1200) ORDER BY 1",
    ) == [
        (5, "NR", 1204),
        (1200, "NR", 1203),
    ]


def test_a_line_cut_short_mid_file_loses_only_itself(warehouse_url, tmp_path):
    lines = [format_line(list(SOURCE_NAMES))] + [
        format_line([row(id_evento_caso=str(i))[c] for c in SOURCE_NAMES]) for i in range(1, 3001)
    ]
    lines[1500] = lines[1500][:60]  # a stray opening quote, like the real sample's last line
    path = tmp_path / "broken.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = load_cases(warehouse_url, path, source_sha256="b", chunk_bytes=64_000)
    assert (report.rows_loaded, report.rows_rejected) == (2999, 1)
    assert query(warehouse_url, "SELECT line_number FROM covid.rejected_cases") == [(1501,)]


def test_loading_the_same_file_twice_changes_nothing(warehouse_url):
    first = load_cases(warehouse_url, REAL_SAMPLE, source_sha256="same")
    [(oid,)] = query(warehouse_url, "SELECT 'covid.cases'::regclass::oid")
    second = load_cases(warehouse_url, REAL_SAMPLE, source_sha256="same")
    assert second.skipped_unchanged and second.load_id == first.load_id
    assert query(warehouse_url, "SELECT 'covid.cases'::regclass::oid") == [(oid,)]
    assert query(warehouse_url, "SELECT count(*) FROM covid.loads") == [(1,)]
    forced = load_cases(warehouse_url, REAL_SAMPLE, source_sha256="same", force=True)
    assert forced.rows_loaded == 10_075 and forced.load_id != first.load_id


def test_a_load_that_fails_midway_leaves_the_previous_tables_in_place(warehouse_url, tmp_path):
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="good")
    before = query(warehouse_url, "SELECT count(*), sum(case_id), max(source_line) FROM covid.cases")
    # A zip whose compressed data is damaged half-way: rows are already being copied when it fails.
    path = write_registry(
        tmp_path / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 40_001)]
    )
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    path.write_bytes(bytes(data))
    with pytest.raises(SourceFormatError, match="damaged or truncated"):
        load_cases(warehouse_url, path, source_sha256="damaged", chunk_bytes=200_000)
    assert query(warehouse_url, "SELECT count(*), sum(case_id), max(source_line) FROM covid.cases") == before
    assert query(warehouse_url, "SELECT count(*) FROM covid.loads") == [(1,)]
    assert query(warehouse_url, "SELECT to_regclass('covid.cases__incoming')") == [(None,)]


def test_header_drift_fails_before_anything_is_written(warehouse_url, tmp_path):
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="good")
    rows = [row(id_evento_caso=str(i)) for i in range(1, 50)]
    drifted = write_registry(tmp_path / "drift.csv", rows, header=[*SOURCE_NAMES[:-1], "fecha_actualizacion"])
    with pytest.raises(SourceFormatError, match="missing: ultima_actualizacion"):
        load_cases(warehouse_url, drifted, source_sha256="drift")
    assert query(warehouse_url, "SELECT count(*) FROM covid.cases") == [(10_075,)]


def test_a_zip_cut_short_is_reported_as_such(warehouse_url, tmp_path):
    path = write_registry(tmp_path / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 2000)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SourceFormatError, match="Covid19Casos.zip: .*zip.*truncated"):
        load_cases(warehouse_url, path, source_sha256="cut")


def test_readers_keep_the_old_table_until_the_swap_commits(warehouse_url, tmp_path):
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="good")
    with psycopg.connect(warehouse_url) as reader:
        reader.execute(
            "CREATE VIEW covid.confirmed AS SELECT case_id FROM covid.cases WHERE classification_summary = 'Confirmado'"
        )
        reader.commit()
    load_cases(
        warehouse_url, write_registry(tmp_path / "new.csv", [row(id_evento_caso="77")]), source_sha256="new"
    )
    # dependent views are recreated on the new table
    assert query(warehouse_url, "SELECT case_id FROM covid.confirmed") == [(77,)]


def test_repeated_ids_are_found_with_a_bit_per_possible_id():
    seen = SeenIds()
    seen.add(np.array([5, 6, 7, 8, 5], dtype=np.int64))  # repeated within a chunk
    seen.add(np.array([8, 9, 3_000_000_000, 3_000_000_000, 40_000_000], dtype=np.int64))  # and across chunks
    seen.add(np.array([40_000_000, 9, 10, 16, 17], dtype=np.int64))  # 16 and 17 share a byte, first seen
    assert seen.duplicate_ids() == [5, 8, 9, 40_000_000, 3_000_000_000]
    assert seen.duplicate_rows == 5
    # the whole registry's ids (up to about 40 million) in 5 MB, not 40: memory stays flat at 29M rows
    assert seen.nbytes <= 40_000_000 // 8 + 1
