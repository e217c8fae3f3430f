"""The cleaning contract, rule by rule, on real-format rows (no database needed but for a rule's effect on the
reports, seen through the graph)."""

from datetime import date

import pytest

from covid_pipeline.ingest.cleaning import FutureDates, check_header, clean_chunk
from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.reader import Chunk, Utf8Stream, iter_record_chunks, open_csv_member
from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline_tests.helpers.registry import (
    REAL_SAMPLE,
    format_line,
    real_rows,
    registry_text,
    row,
    write_registry,
)
from covid_pipeline_tests.helpers.short_registry import BASE_ROWS, base_lines, line_of, rejects, run_changed
from covid_pipeline_tests.helpers.warehouse import checks_of, query, run_graph


def clean_lines(*rows: dict | str, first_line: int = 2):
    """Clean data lines (dicts in registry order, or raw text lines) as one chunk."""
    lines = [r if isinstance(r, str) else format_line([r[c] for c in SOURCE_NAMES]) for r in rows]
    return clean_chunk(Chunk(("\n".join(lines) + "\n").encode(), first_line))


def test_a_good_row_is_typed_and_renamed():
    result = clean_lines(row(id_evento_caso="42", edad="53", fallecido="SI", carga_provincia_id="6"))
    assert not result.rejects
    loaded = result.table.to_pylist()[0]
    assert loaded["case_id"] == 42
    assert loaded["age_years"] == 53
    assert loaded["deceased"] is True
    assert loaded["icu"] is False
    assert loaded["reporting_province_id"] == 6
    assert isinstance(loaded["opened_date"], date)
    assert loaded["source_line"] == 2


def test_province_codes_with_and_without_leading_zero_are_the_same():
    result = clean_lines(
        row(residencia_provincia_id="06"), row(id_evento_caso="2", residencia_provincia_id="6")
    )
    assert result.table.column("residence_province_id").to_pylist() == [6, 6]


def test_empty_fields_are_null():
    result = clean_lines(row(edad="", fecha_inicio_sintomas="", cuidado_intensivo="", sexo=""))
    loaded = result.table.to_pylist()[0]
    assert loaded["age_years"] is None
    assert loaded["symptom_onset_date"] is None
    assert loaded["icu"] is None
    assert loaded["sex"] is None


def test_age_in_months_becomes_whole_years():
    result = clean_lines(
        row(id_evento_caso="1", edad="11", **{"edad_años_meses": "Meses"}),
        row(id_evento_caso="2", edad="30", **{"edad_años_meses": "Meses"}),
        row(id_evento_caso="3", edad="30", **{"edad_años_meses": "Años"}),
    )
    assert result.table.column("age_years").to_pylist() == [0, 2, 30]
    assert result.table.column("age_unit").to_pylist() == ["Meses", "Meses", "Años"]


@pytest.mark.parametrize(
    ("changes", "column", "fragment"),
    [
        ({"id_evento_caso": "12a"}, "id_evento_caso", "'12a'"),
        ({"id_evento_caso": ""}, "id_evento_caso", "empty"),
        ({"id_evento_caso": "1.5"}, "id_evento_caso", "integer"),
        ({"fecha_apertura": "2020-02-30"}, "fecha_apertura", "'2020-02-30'"),
        ({"fecha_apertura": "01/06/2020"}, "fecha_apertura", "YYYY-MM-DD"),
        ({"fecha_fallecimiento": "2020-6-1"}, "fecha_fallecimiento", "'2020-6-1'"),
        ({"ultima_actualizacion": "mañana"}, "ultima_actualizacion", "'mañana'"),
        ({"edad": "treinta"}, "edad", "integer"),
        ({"fallecido": "QUIZAS"}, "fallecido", "SI or NO"),
        ({"edad_años_meses": "Siglos"}, "edad_años_meses", "Años or Meses"),
        ({"residencia_provincia_id": "CABA"}, "residencia_provincia_id", "integer"),
    ],
)
def test_a_bad_value_rejects_the_row_naming_the_column(changes, column, fragment):
    good = row(id_evento_caso="7")
    bad = row(**changes)
    result = clean_lines(good, bad, first_line=10)
    assert result.table.column("case_id").to_pylist() == [7]
    [reject] = result.rejects
    assert reject.line_number == 11
    assert reject.column_name == column
    assert column in reject.reason and fragment in reject.reason
    assert reject.raw_line == format_line([bad[c] for c in SOURCE_NAMES])


def test_the_first_bad_column_is_the_one_reported():
    result = clean_lines(row(id_evento_caso="x", fecha_apertura="nope"))
    assert [r.column_name for r in result.rejects] == ["id_evento_caso"]


def test_a_row_with_the_wrong_number_of_fields_is_rejected_with_its_text():
    short = (
        '"1013453","F","33","Años","Argentina","CABA","COMUNA 04","Bueno'  # the real sample's cut-off line
    )
    result = clean_lines(row(id_evento_caso="1"), short, row(id_evento_caso="2"), first_line=100)
    assert result.table.column("case_id").to_pylist() == [1, 2]
    assert result.table.column("source_line").to_pylist() == [100, 102]
    [reject] = result.rejects
    assert (reject.line_number, reject.column_name, reject.raw_line) == (101, "carga_provincia_nombre", short)
    assert "the line ends inside the quoted field 8 of 25" in reject.reason


def test_a_quoted_newline_inside_a_field_is_read_exactly():
    multiline = row(id_evento_caso="5", clasificacion="Caso\nsospechoso")
    result = clean_lines(row(id_evento_caso="4"), multiline, row(id_evento_caso="6"), first_line=2)
    assert result.table.column("case_id").to_pylist() == [4, 5, 6]
    assert result.table.column("classification").to_pylist()[1] == "Caso\nsospechoso"
    assert result.table.column("source_line").to_pylist() == [2, 3, 5]


def test_blank_lines_and_crlf_are_accepted():
    text = registry_text([row(id_evento_caso="1"), row(id_evento_caso="2")], newline="\r\n") + "\r\n"
    body = text.split("\r\n", 1)[1].encode()
    result = clean_chunk(Chunk(body, 2))
    assert result.table.column("case_id").to_pylist() == [1, 2]
    assert result.table.column("sex").to_pylist()[0] == row()["sexo"]  # no stray \r in values
    assert result.table.column("last_updated").to_pylist()[1] == date(2020, 11, 23)
    assert not result.rejects


def test_header_drift_names_the_expected_and_found_columns():
    renamed = [("id_caso" if c == "id_evento_caso" else c) for c in SOURCE_NAMES] + ["nueva"]
    with pytest.raises(SourceFormatError) as error:
        check_header(format_line(renamed).encode() + b"\n", "Covid19Casos.csv")
    message = str(error.value)
    assert (
        "line 1" in message
        and "missing: id_evento_caso" in message
        and "unexpected: id_caso, nueva" in message
    )
    assert "Expected 25 columns" in message and "Found 26 columns" in message


def read_all(path, chunk_bytes):
    """Every record of a file through the streaming reader, as (first_line, cleaned) per chunk."""
    with open_csv_member(path) as (raw, name):
        stream = Utf8Stream(raw, name)
        chunks = list(iter_record_chunks(stream, chunk_bytes))
    return stream, chunks


def test_chunks_end_on_records_and_number_lines_across_chunks():
    stream, chunks = read_all(REAL_SAMPLE, chunk_bytes=50_000)
    assert len(chunks) > 20
    assert all(c.data.endswith(b"\n") for c in chunks)
    total_lines = sum(c.data.count(b"\n") for c in chunks)
    assert total_lines == 10_076  # header + 10,075 rows
    # each chunk starts on the line after the previous chunk's last line
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert after.first_line == before.first_line + before.data.count(b"\n")
    last = clean_chunk(chunks[-1])
    assert last.table.column("source_line").to_pylist()[-1] == 10_076


def test_utf16_with_bom_and_crlf_is_transcoded(tmp_path):
    path = write_registry(
        tmp_path / "utf16.csv", [row(id_evento_caso="9")], encoding="utf-16-le", newline="\r\n"
    )
    assert path.read_bytes().startswith(b"\xff\xfe")
    stream, chunks = read_all(path, 1 << 20)
    assert stream.encoding == "utf-16-le"
    data = stream.validate(chunks[0]).data
    check_header(data.split(b"\n", 1)[0] + b"\n", path.name)
    result = clean_chunk(Chunk(data.split(b"\n", 1)[1], 2))
    assert result.table.column("case_id").to_pylist() == [9]
    assert result.table.column("age_unit").to_pylist() == ["Años"]


def test_a_file_re_saved_as_windows_1252_is_transcoded(tmp_path):
    rows = [row(id_evento_caso="1", residencia_departamento_nombre="Cañuelas"), row(id_evento_caso="2")]
    path = write_registry(tmp_path / "latin1.csv", rows, encoding="cp1252", newline="\r\n")
    stream, chunks = read_all(path, 1 << 20)
    assert stream.encoding == "windows-1252"
    data = b"".join(stream.validate(chunk).data for chunk in chunks)
    check_header(data.split(b"\n", 1)[0] + b"\n", path.name)
    result = clean_chunk(Chunk(data.split(b"\n", 1)[1], 2))
    assert result.table.column("residence_department").to_pylist()[0] == "Cañuelas"
    assert result.table.column("age_unit").to_pylist() == ["Años", "Años"]
    assert result.table.column("funding").to_pylist()[0] == row()["origen_financiamiento"]


def test_a_stray_latin1_byte_in_a_utf8_file_is_refused_with_line_and_column(tmp_path):
    path = write_registry(tmp_path / "mixed.csv", [row(id_evento_caso="1"), row(id_evento_caso="2")])
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace("Años".encode(), "Años".encode("latin-1"))  # one line re-saved
    path.write_bytes(b"\n".join(lines))
    stream, chunks = read_all(path, 1 << 20)
    assert stream.encoding == "utf-8"
    with pytest.raises(SourceFormatError) as error:
        stream.validate(chunks[0])
    assert "mixed.csv, line 3, column " in str(error.value)
    assert "(CSV field 4, edad_años_meses): byte 0xf1 is not valid UTF-8" in str(error.value)


def test_commas_inside_quoted_values_are_not_separators():
    with_comma = row(id_evento_caso="1", residencia_departamento_nombre="Coronel, Rosales")
    # 24 fields whose quoted comma makes 24 commas in all: only Arrow's own count can tell
    short_with_comma = format_line([row(residencia_departamento_nombre="a,b")[c] for c in SOURCE_NAMES][:-1])
    result = clean_lines(with_comma, short_with_comma, row(id_evento_caso="3"), first_line=2)
    assert result.table.column("case_id").to_pylist() == [1, 3]
    assert result.table.column("residence_department").to_pylist()[0] == "Coronel, Rosales"
    [reject] = result.rejects
    assert (reject.line_number, reject.reason) == (3, "expected 25 fields, found 24")


# --- dates in the future of their publication ---------------------------------------------------------

PUBLISHED = row()["ultima_actualizacion"]  # 2020-11-23
DATE_SOURCES = [
    "fecha_inicio_sintomas",
    "fecha_apertura",
    "fecha_internacion",
    "fecha_cui_intensivo",
    "fecha_fallecimiento",
    "fecha_diagnostico",
]


def clean_dated(*rows: dict, tolerance: int = 1, load_day: date = date(2026, 1, 1)):
    lines = [format_line([r[c] for c in SOURCE_NAMES]) for r in rows]
    chunk = Chunk(("\n".join(lines) + "\n").encode(), 2)
    return clean_chunk(chunk, future=FutureDates(tolerance_days=tolerance, load_day=load_day))


@pytest.mark.parametrize("column", DATE_SOURCES)
def test_a_date_after_the_rows_own_publication_is_rejected_naming_the_column(column):
    result = clean_dated(
        row(id_evento_caso="1", **{column: "2020-11-24"}),  # within the day of tolerance
        row(id_evento_caso="2", **{column: "2020-11-25"}),
        row(id_evento_caso="3", **{column: "2100-12-31"}),
    )
    assert result.table.column("case_id").to_pylist() == [1]
    assert [(r.line_number, r.column_name) for r in result.rejects] == [(3, column), (4, column)]
    assert result.rejects[1].reason == (
        f"{column}: 2100-12-31 is after the row's own ultima_actualizacion, {PUBLISHED} (with 1 day(s) of "
        "tolerance): no case date can lie in the future of the publication that lists it"
    )
    assert result.rejects[1].raw_line == format_line(
        [row(id_evento_caso="3", **{column: "2100-12-31"})[c] for c in SOURCE_NAMES]
    )


def test_the_tolerance_is_the_setting_s():
    late = row(fecha_apertura="2020-11-24")
    assert [r.column_name for r in clean_dated(late, tolerance=0).rejects] == ["fecha_apertura"]
    assert not clean_dated(row(fecha_apertura="2020-11-26"), tolerance=3).rejects


def test_a_row_dated_after_the_day_of_the_load_is_rejected():
    result = clean_dated(
        row(id_evento_caso="1", ultima_actualizacion="2026-01-02"),  # a day of tolerance
        row(id_evento_caso="2", ultima_actualizacion="2026-01-03", fecha_apertura="2026-01-03"),
        load_day=date(2026, 1, 1),
    )
    assert result.table.column("case_id").to_pylist() == [1]
    [reject] = result.rejects
    assert (reject.line_number, reject.column_name) == (3, "ultima_actualizacion")
    assert "2026-01-03 is after the day of the load, 2026-01-01 in Argentina" in reject.reason


def test_the_day_of_the_load_is_argentina_s():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    assert FutureDates().load_day == datetime.now(ZoneInfo("America/Argentina/Buenos_Aires")).date()


def test_one_future_dated_row_is_rejected_and_does_not_move_the_reporting_window(sample_copy, tmp_path):
    """A single fecha_apertura of 2100-12-31 used to pass every check and become the reference date."""
    rows = real_rows()
    rows[41] = rows[41] | {"fecha_apertura": "2100-12-31"}
    cases = write_registry(tmp_path / "Covid19Casos.zip", rows)
    result = run_graph(sample_copy, tmp_path, cases=cases)
    assert result.success
    [(line, column, reason)] = query(
        sample_copy, "SELECT line_number, column_name, reason FROM covid.rejected_cases"
    )
    assert (line, column) == (43, "fecha_apertura") and "2100-12-31 is after the row's own" in reason
    latest = max(r["fecha_apertura"] for r in rows if r["fecha_apertura"] != "2100-12-31")
    assert query(sample_copy, "SELECT max(opened_date)::text FROM covid.cases") == [(latest,)]
    # the reporting window ends on the publication's date, never on a data column's max()
    [published] = {r["ultima_actualizacion"] for r in rows}
    assert query(sample_copy, "SELECT reference_date::text FROM reporting.latest_update") == [(published,)]


@pytest.mark.parametrize(
    ("column", "fits", "overflows"),
    [
        ("id_evento_caso", "9223372036854775807", "9223372036854775808"),
        ("id_evento_caso", "0009223372036854775807", "99999999999999999999"),
        ("residencia_departamento_id", "2147483647", "2147483648"),
    ],
)
def test_an_integer_gets_the_same_verdict_whatever_its_neighbours(column, fits, overflows):
    def verdicts(*values):
        rows = [row(id_evento_caso=str(i + 1)) | {column: v} for i, v in enumerate(values)]
        return {r.line_number for r in clean_lines(*rows).rejects}

    assert verdicts(fits) == set()
    assert verdicts(fits, overflows) == {3}
    assert verdicts(overflows) == {2}


def test_case_and_spacing_variants_are_written_as_sisa_writes_them_and_other_values_reported(short_warehouse):
    url, _ = short_warehouse
    lines = base_lines()
    base = real_rows(BASE_ROWS)
    variants = {2: "confirmado", 3: "CONFIRMADO", 4: "Confirmado ", 5: "Confirmadx"}
    for index, value in variants.items():
        lines[index + 1] = line_of(
            base[index] | {"clasificacion_resumen": value, "sexo": " f", "fallecido": "si"}
        )
    result, _ = run_changed(short_warehouse, lines)
    assert result.success and not rejects(url)
    ids = [int(base[i]["id_evento_caso"]) for i in variants]
    found = dict(
        query(url, "SELECT case_id, classification_summary FROM covid.cases WHERE case_id = ANY(%s)", (ids,))
    )
    assert [found[i] for i in ids] == ["Confirmado", "Confirmado", "Confirmado", "Confirmadx"]
    assert query(url, "SELECT DISTINCT sex, deceased FROM covid.cases WHERE case_id = ANY(%s)", (ids,)) == [
        ("F", True)
    ]
    confirmed = sum(
        1
        for i, r in enumerate(base)
        if (variants.get(i) or r["clasificacion_resumen"]).strip().lower() == "confirmado"
    )
    assert query(url, "SELECT sum(confirmed) FROM covid.daily_aggregates")[0][0] == confirmed
    check = checks_of(result)["categorical_values_known"]
    assert not check.passed and check.metadata["cases_with_unknown_values"].value == 1
    assert "'Confirmadx'" in check.metadata["most_frequent_unknown_values"].value
