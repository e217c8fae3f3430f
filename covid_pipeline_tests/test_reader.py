"""Reading the registry (ingest/reader.py): the ISA-L inflater gives zipfile's bytes and checks the CRC; records
are cut from the stream in bounded memory, a line too long to be a record set aside as it is read; bytes that
do not decode reject their row with their offset, and what other tools do to a file (a decomposed-Unicode
re-save, a repeated BOM, blank lines first) does not make it unreadable."""

import os
import subprocess
import sys
import unicodedata
import zipfile

import pytest

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.ingest.reader import CHUNK_BYTES, Utf8Stream, iter_record_chunks, open_csv_member
from covid_pipeline_tests.helpers.registry import real_rows, registry_text, write_registry
from covid_pipeline_tests.helpers.warehouse import query


@pytest.fixture
def registry_zip(tmp_path):
    return write_registry(tmp_path / "Covid19Casos.zip", real_rows(3_000))


@pytest.mark.parametrize("read_size", [7, 4_099, 1 << 20, -1])
def test_the_member_reads_as_zipfile_reads_it(registry_zip, read_size):
    with zipfile.ZipFile(registry_zip) as archive:
        expected = archive.read("Covid19Casos.csv")
    with open_csv_member(registry_zip) as (stream, name):
        parts = [stream.read(read_size)]
        while parts[-1]:
            parts.append(stream.read(read_size))
    assert name == "Covid19Casos.zip!Covid19Casos.csv"
    assert b"".join(parts) == expected


def test_a_crc_that_does_not_match_is_refused(registry_zip):
    data = bytearray(registry_zip.read_bytes())
    directory = data.rindex(b"PK\x01\x02")
    data[directory + 16] ^= 0xFF  # the CRC-32 the central directory records for the member
    registry_zip.write_bytes(bytes(data))
    with open_csv_member(registry_zip) as (stream, _), pytest.raises(SourceFormatError, match="CRC mismatch"):
        while stream.read(1 << 16):
            pass


# --- a line with no end is never held whole ------------------------------------------------------------

LONG_LINE_BYTES = 128 << 20  # far more than the reader's blocks, quick to read past


def registry_with_a_long_line(path, line_bytes: int | None):
    """The first 2,000 real rows in a zip, with (unless None) a line of `line_bytes` bytes and no quote or
    comma after row 1,000: a record that never ends, written in pieces (the test holds none of it)."""
    lines = registry_text(real_rows(2_000)).splitlines(keepends=True)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive,
        archive.open("Covid19Casos.csv", "w") as out,
    ):
        out.write("".join(lines[:1_001]).encode())
        if line_bytes is not None:
            for _ in range(line_bytes // (1 << 20)):
                out.write(b"x" * (1 << 20))
            out.write(b"\n")
        out.write("".join(lines[1_001:]).encode())
    return path


def load_in_a_process(url: str, path) -> tuple[str, int]:
    """Load `path` in a fresh Python; its output and its peak resident memory in bytes (wait4's, this child's
    alone)."""
    code = (
        "import sys; from covid_pipeline.ingest.loader import load_cases; "
        "r = load_cases(sys.argv[1], sys.argv[2], source_sha256=sys.argv[2]); "
        "print(r.rows_read, r.rows_loaded, r.rows_rejected)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, url, str(path)], stdout=subprocess.PIPE, text=True
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    return output.strip(), usage.ru_maxrss * 1024  # Linux reports kilobytes


def test_a_line_without_an_end_is_rejected_while_reading_and_memory_stays_flat(warehouse_url, tmp_path):
    control = registry_with_a_long_line(tmp_path / "control.zip", None)
    hostile = registry_with_a_long_line(tmp_path / "Covid19Casos.zip", LONG_LINE_BYTES)
    said, control_peak = load_in_a_process(warehouse_url, control)
    assert said == "2000 2000 0"
    said, peak = load_in_a_process(warehouse_url, hostile)
    assert said == "2001 2000 1"
    # the line is read past block by block: the peak grows by a few of the reader's blocks, not by the line
    # (holding the line whole, it grew by about 14 times the line)
    print(f"peak RSS {peak / 2**20:.0f} MB with the line, {control_peak / 2**20:.0f} MB without")
    assert peak - control_peak < 3 * CHUNK_BYTES
    [(line, column, reason, raw)] = query(
        warehouse_url, "SELECT line_number, column_name, reason, raw_line FROM covid.rejected_cases"
    )
    assert (line, column) == (1_002, None)
    assert reason.startswith(f"the line is {LONG_LINE_BYTES:,} bytes long without a record end")
    assert raw == "x" * 1024 + f"… [{LONG_LINE_BYTES - 1024:,} more bytes]"
    # the rows after it keep their own line numbers
    assert query(warehouse_url, "SELECT min(source_line), max(source_line) FROM covid.cases") == [(2, 2_002)]


@pytest.mark.parametrize("chunk_bytes", [1 << 20, 3 << 20])
def test_a_long_line_at_the_end_of_the_file_is_rejected_too(tmp_path, chunk_bytes):
    path = tmp_path / "end.csv"
    path.write_bytes(registry_text(real_rows(3)).encode() + b"y" * (5 << 20))
    with open(path, "rb") as raw:
        chunks = list(iter_record_chunks(Utf8Stream(raw, path.name), chunk_bytes))
    rejects = [r for chunk in chunks for r in chunk.rejects]
    assert [(r.line_number, r.column_name) for r in rejects] == [(5, None)]
    assert b"".join(chunk.data for chunk in chunks).count(b"\n") == 4  # the header and the three rows
    assert max(len(chunk.data) for chunk in chunks) < 2 * chunk_bytes


def test_a_first_line_without_an_end_is_not_taken_for_a_header(tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(b"z" * (3 << 20))
    with (
        open(path, "rb") as raw,
        pytest.raises(SourceFormatError, match=r"blob.csv, line 1: over 1,048,576 bytes"),
    ):
        list(iter_record_chunks(Utf8Stream(raw, path.name), 1 << 20))


# --- bytes that do not decode, and files re-saved by other tools -----------------------------------------

ROWS = real_rows(50)
TEXT = registry_text(ROWS)


def load_bytes(url, tmp_path, data: bytes, name: str = "Covid19Casos.csv"):
    path = tmp_path / name
    path.write_bytes(data)
    return load_cases(url, path, source_sha256=name)


def rejected(url) -> list[tuple]:
    return query(
        url, "SELECT line_number, column_name, reason, raw_line FROM covid.rejected_cases ORDER BY 1"
    )


@pytest.mark.parametrize(("encoding", "bom"), [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")])
def test_a_lone_surrogate_in_utf16_rejects_its_row_naming_the_offset(warehouse_url, tmp_path, encoding, bom):
    lines = TEXT.split("\n")
    lines[5] = lines[5].replace("Argentina", "Argen\ud800tina", 1)  # half of a character, alone
    data = bom + "\n".join(lines).encode(encoding, "surrogatepass")
    offset = len(bom) + "\n".join(lines[:5]).encode(encoding).__len__() + 2 * (lines[5].index("\ud800") + 1)
    report = load_bytes(warehouse_url, tmp_path, data)
    assert (report.rows_loaded, report.rows_rejected) == (len(ROWS) - 1, 1)
    [(line, column, reason, raw)] = rejected(warehouse_url)
    assert (line, column) == (6, "residencia_pais_nombre")
    surrogate = "\ud800".encode(encoding, "surrogatepass").hex(" ")
    assert reason == (
        f"column {lines[5].index(chr(0xD800)) + 1}: bytes {surrogate} at byte {offset:,} of the file are not "
        f"{encoding} (a lone surrogate, half of a character)"
    )
    assert raw == lines[5].replace("\ud800", "\ufffd")


def test_utf16_cut_by_one_byte_rejects_only_the_last_row_saying_so(warehouse_url, tmp_path):
    data = b"\xff\xfe" + TEXT.encode("utf-16-le")
    report = load_bytes(warehouse_url, tmp_path, data[:-1])
    assert (report.rows_loaded, report.rows_rejected) == (len(ROWS) - 1, 1)
    [(line, column, reason, _)] = rejected(warehouse_url)
    assert (line, column) == (len(ROWS) + 1, "ultima_actualizacion")
    assert f"bytes 0a at byte {len(data) - 2:,} of the file are not utf-16-le" in reason
    assert "the file ends inside a character: it was cut short" in reason


def test_a_byte_windows_1252_does_not_define_rejects_its_row(warehouse_url, tmp_path):
    lines = TEXT.encode("cp1252").split(b"\n")
    lines[3] = lines[3].replace(b"Argentina", b"Argen\x81tina", 1)
    report = load_bytes(warehouse_url, tmp_path, b"\n".join(lines))
    assert (report.encoding, report.rows_rejected) == ("windows-1252", 1)
    [(line, column, reason, _)] = rejected(warehouse_url)
    assert (line, column) == (4, "residencia_pais_nombre") and "bytes 81 at byte " in reason


def test_bytes_that_do_not_decode_in_the_header_refuse_the_file(warehouse_url, tmp_path):
    header, rest = TEXT.split("\n", 1)
    data = b"\xff\xfe" + (header.replace("sexo", "se\ud800xo") + "\n" + rest).encode(
        "utf-16-le", "surrogatepass"
    )
    with pytest.raises(
        SourceFormatError, match=r"Covid19Casos.csv, line 1, column \d+: bytes 00 d8 at byte \d+"
    ):
        load_bytes(warehouse_url, tmp_path, data)


@pytest.mark.parametrize("whole_file", [False, True])
def test_a_macos_re_save_in_decomposed_unicode_loads_as_the_original(warehouse_url, tmp_path, whole_file):
    header, rest = TEXT.split("\n", 1)
    text = (
        unicodedata.normalize("NFD", TEXT)
        if whole_file
        else unicodedata.normalize("NFD", header) + "\n" + rest
    )
    assert "edad_años_meses" not in text  # the ñ is n + a combining tilde now
    report = load_bytes(warehouse_url, tmp_path, text.encode())
    assert (report.rows_loaded, report.rows_rejected) == (len(ROWS), 0)
    units = query(warehouse_url, "SELECT age_unit, count(*) FROM covid.cases GROUP BY 1")
    assert units == [("Años", sum(r["edad_años_meses"] == "Años" for r in ROWS))]


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf\xef\xbb\xbf" + TEXT.encode(),  # a BOM written twice
        b"\xff\xfe" + ("\ufeff" + TEXT).encode("utf-16-le"),  # UTF-16 with its BOM twice
    ],
    ids=["utf-8", "utf-16"],
)
def test_a_repeated_bom_is_dropped(warehouse_url, tmp_path, data):
    assert load_bytes(warehouse_url, tmp_path, data).rows_loaded == len(ROWS)


def test_blank_lines_before_the_header_are_skipped_and_lines_keep_their_numbers(warehouse_url, tmp_path):
    load_bytes(warehouse_url, tmp_path, b"\n\r\n" + TEXT.encode())
    assert query(warehouse_url, "SELECT min(source_line), max(source_line) FROM covid.cases") == [
        (4, len(ROWS) + 3)
    ]
    drifted = b"\n" + TEXT.replace("sexo", "genero", 1).encode()
    with pytest.raises(SourceFormatError, match=r"drifted.csv, line 2: the header does not match"):
        load_bytes(warehouse_url, tmp_path, drifted, "drifted.csv")


def test_a_field_holding_a_zip_signature_does_not_make_a_csv_a_zip(warehouse_url, tmp_path):
    """zipfile.is_zipfile finds the end-of-archive signature near a file's end, wherever it is."""
    rows = [dict(r) for r in ROWS]
    rows[-2]["residencia_departamento_nombre"] = "PK\x05\x06" + "\x01" * 18
    report = load_bytes(warehouse_url, tmp_path, registry_text(rows).encode())
    assert (report.rows_loaded, report.rows_rejected) == (len(ROWS), 0)
    assert query(
        warehouse_url, "SELECT residence_department FROM covid.cases WHERE source_line = %s", (len(ROWS),)
    ) == [("PK\x05\x06" + "\x01" * 18,)]
