"""The cleaning contract, rule by rule, on real-format rows (no database needed)."""

from datetime import date

import pytest

from covid_pipeline.ingest.cleaning import check_header, clean_chunk
from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.reader import Chunk, Utf8Stream, iter_record_chunks, open_csv_member
from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE, format_line, registry_text, row, write_registry


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
    data = stream.validate(chunks[0])
    check_header(data.split(b"\n", 1)[0] + b"\n", path.name)
    result = clean_chunk(Chunk(data.split(b"\n", 1)[1], 2))
    assert result.table.column("case_id").to_pylist() == [9]
    assert result.table.column("age_unit").to_pylist() == ["Años"]


def test_a_file_re_saved_as_windows_1252_is_transcoded(tmp_path):
    rows = [row(id_evento_caso="1", residencia_departamento_nombre="Cañuelas"), row(id_evento_caso="2")]
    path = write_registry(tmp_path / "latin1.csv", rows, encoding="cp1252", newline="\r\n")
    stream, chunks = read_all(path, 1 << 20)
    assert stream.encoding == "windows-1252"
    data = b"".join(stream.validate(chunk) for chunk in chunks)
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
