"""Reading the registry (ingest/reader.py): the ISA-L inflater gives zipfile's bytes and checks the CRC; records
are cut from the stream in bounded memory, a line too long to be a record set aside as it is read."""

import os
import subprocess
import sys
import zipfile

import pytest

from covid_pipeline.ingest.errors import SourceFormatError
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
