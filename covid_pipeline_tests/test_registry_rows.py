"""A registry row that breaks the cleaning contract is rejected alone, with its physical line, the column at fault,
the reason and its raw text (every line of a multi-line record); every other row loads exactly as the file says,
and no value is ever changed silently (a property test of random corruptions).

The files are the short registry (300 real rows) with one line changed, run through the graph as
`dagster asset materialize` runs it, on a warehouse that already holds the unchanged file.
"""

import csv
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline_tests.helpers.registry import real_rows, registry_text
from covid_pipeline_tests.helpers.short_registry import (
    BASE_ROWS,
    base_lines,
    changed_line,
    line_of,
    loaded_ids,
    rejects,
    run_changed,
)
from covid_pipeline_tests.helpers.warehouse import query


def test_a_date_outside_1900_to_2100_rejects_its_row_and_the_aggregates_are_built(short_warehouse):
    url, _ = short_warehouse
    lines, line = changed_line(10, fecha_apertura="0000-01-01")
    lines[30] = line_of(real_rows(BASE_ROWS)[29] | {"fecha_diagnostico": "2101-01-01"})
    result, _ = run_changed(short_warehouse, lines)
    assert result.success
    found = [(r[0], r[1]) for r in rejects(url)]
    assert found == [(line, "fecha_apertura"), (31, "fecha_diagnostico")]
    assert "between 1900 and 2100" in rejects(url)[0][2]
    notified = query(url, "SELECT sum(notified) FROM covid.daily_aggregates")[0][0]
    assert notified == query(url, "SELECT count(*) FROM covid.cases")[0][0] == BASE_ROWS - 2


@pytest.mark.parametrize(
    ("column", "broken"),
    [
        ("id_evento_caso", '"2200000"1'),
        ("fallecido", '"S"I'),
        ("residencia_departamento_nombre", '"La "Matanza"'),
        ("residencia_departamento_nombre", 'La "Matanza'),
    ],
)
def test_text_outside_quotes_rejects_the_row_naming_the_column(short_warehouse, column, broken):
    url, _ = short_warehouse
    lines = base_lines()
    fields = next(csv.reader([lines[6]]))
    position = SOURCE_NAMES.index(column)
    quoted = ['"' + v.replace('"', '""') + '"' if v else "" for v in fields]
    quoted[position] = broken
    lines[6] = ",".join(quoted)
    result, before = run_changed(short_warehouse, lines)
    assert result.success
    [(line, named, reason, raw)] = rejects(url)
    assert (line, named, raw) == (7, column, lines[6])
    assert "quote" in reason
    assert 22000001 not in loaded_ids(url)
    # every other row is loaded exactly as in the baseline
    assert query(url, "SELECT count(*) FROM covid.cases")[0][0] == before["covid.cases"][0] - 1


def test_a_nul_in_a_field_rejects_the_row_and_a_rejected_row_may_hold_a_nul(short_warehouse):
    url, _ = short_warehouse
    lines = base_lines()
    lines[3] = lines[3].replace('"Argentina"', '"Argen\0tina"', 1)
    lines[8] = lines[8][:40] + "\0"  # cut short, with a NUL
    result, _ = run_changed(short_warehouse, lines)
    assert result.success
    found = rejects(url)
    assert [r[0] for r in found] == [4, 9] and found[0][1] == "residencia_pais_nombre"
    assert "NUL" in found[0][2]
    assert found[1][3] == lines[8][:40] + "\u2400"  # shown, since PostgreSQL's text cannot hold NUL


def test_an_unquoted_line_over_1_mb_is_rejected_alone(short_warehouse):
    url, _ = short_warehouse
    lines = base_lines()
    lines[5] = lines[5] + "," + "x" * (1 << 21)
    result, _ = run_changed(short_warehouse, lines)
    assert result.success
    [(line, _, reason, _)] = rejects(url)
    assert line == 6 and "longer than 1 MB" in reason
    assert query(url, "SELECT count(*) FROM covid.cases")[0][0] == BASE_ROWS - 1


def test_a_rejected_multiline_record_keeps_every_line(short_warehouse):
    url, _ = short_warehouse
    lines = base_lines()
    values = real_rows(BASE_ROWS)[20] | {"clasificacion": "Caso\nsospechoso", "fecha_apertura": "2020-13-45"}
    lines[21] = line_of(values)
    result, _ = run_changed(short_warehouse, lines)
    assert result.success
    [(line, column, _, raw)] = rejects(url)
    assert (line, column) == (22, "fecha_apertura")
    assert raw == lines[21]  # both physical lines


def file_with_a_stray_quote(tmp_path, multiline_at: int):
    """Stray quote at row 4; a valid record with a quoted newline at row `multiline_at`."""
    rows = real_rows(40)
    rows[multiline_at] = rows[multiline_at] | {"clasificacion": "Caso confirmado\npor laboratorio"}
    lines = registry_text(rows).split("\n")
    lines[5] = lines[5][:3] + '"' + lines[5][3:]  # row 4, line 6: "10"13..., an odd number of quotes
    path = tmp_path / f"cascade{multiline_at}.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, rows


@pytest.mark.parametrize("chunk_bytes", [700, 1500, 4000, 1 << 20])
def test_a_stray_quote_rejects_its_row_alone_and_a_later_multiline_record_loads(
    warehouse_url, tmp_path, chunk_bytes
):
    """Also when the reader's chunks end anywhere around them."""
    path, rows = file_with_a_stray_quote(tmp_path, multiline_at=9)
    report = load_cases(warehouse_url, path, source_sha256="x", chunk_bytes=chunk_bytes)
    assert [(r.line_number, r.column_name) for r in report.sample_rejects] == [(6, "id_evento_caso")]
    assert report.rows_loaded == len(rows) - 1
    assert query(
        warehouse_url,
        "SELECT classification, source_line FROM covid.cases WHERE case_id = %s",
        (int(rows[9]["id_evento_caso"]),),
    ) == [("Caso confirmado\npor laboratorio", 11)]


# --- property: random corruptions ---------------------------------------------------------------------

CLEAN_ROWS = real_rows(25)
CLEAN_TEXT = registry_text(CLEAN_ROWS)


def corrupt(data: bytes, kind: str, position: int, byte: int) -> bytes:
    position %= len(data)
    if kind == "flip":
        # A separator becomes another byte, or any byte gets its high bit flipped (never valid UTF-8 then).
        # A letter changed into another letter is a different, valid value: no reader can tell.
        structural = data[position] in b'",\n'
        flipped = b'",\nx'[byte % 4] if structural and byte % 2 else data[position] ^ 0x80
        return data[:position] + bytes([flipped]) + data[position + 1 :]
    if kind == "insert_quote":
        return data[:position] + b'"' + data[position:]
    if kind == "remove_quote":
        quotes = [i for i, b in enumerate(data) if b == ord('"')]
        at = quotes[position % len(quotes)]
        return data[:at] + data[at + 1 :]
    if kind == "cut_line":
        end = data.find(b"\n", position)
        return data[:position] + data[end:] if end > 0 else data[:position]
    if kind == "nul":
        return data[:position] + b"\0" + data[position:]
    raise AssertionError(kind)


@pytest.fixture
def clean_load(warehouse_url, tmp_path):
    path = tmp_path / "clean.csv"
    path.write_text(CLEAN_TEXT, encoding="utf-8")
    load_cases(warehouse_url, path, source_sha256="clean")
    clean = {r[0]: r for r in query(warehouse_url, "SELECT * FROM covid.cases")}
    return warehouse_url, clean


def checksums_of_cases(url):
    return query(
        url,
        "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM covid.cases t",
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["flip", "insert_quote", "remove_quote", "cut_line", "nul"]),
    position=st.integers(
        min_value=len(CLEAN_TEXT.split("\n", 1)[0]) + 1, max_value=len(CLEAN_TEXT.encode()) - 1
    ),
    byte=st.integers(min_value=0, max_value=255),
    chunk_bytes=st.sampled_from([1 << 20, 1500]),  # also across chunk boundaries
)
def test_a_random_corruption_rejects_rows_or_refuses_the_file_and_never_changes_a_value(
    clean_load, tmp_path, kind, position, byte, chunk_bytes
):
    url, clean = clean_load
    data = corrupt(CLEAN_TEXT.encode(), kind, position, byte)
    path = tmp_path / f"corrupt-{uuid.uuid4().hex[:8]}.csv"
    path.write_bytes(data)
    before = checksums_of_cases(url)
    try:
        load_cases(url, path, source_sha256=path.name, chunk_bytes=chunk_bytes)
    except SourceFormatError as refused:
        assert path.name in str(refused) or "line" in str(refused)
        assert checksums_of_cases(url) == before
        return
    physical = data.decode("utf-8").split("\n")
    for line, _, _, raw in rejects(url):
        assert raw.replace("\u2400", "\0") == "\n".join(
            physical[line - 1 : line - 1 + raw.count("\n") + 1]
        ).rstrip("\r")
    loaded = query(url, "SELECT * FROM covid.cases")
    for values in loaded:
        source_line = values[-1]
        assert clean.get(values[0], (None,))[:-1] == values[:-1], f"changed value on line {source_line}"
    assert len(loaded) >= len(clean) - 2  # the corrupted record, and at most the one it was merged with
