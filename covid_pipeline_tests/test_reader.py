"""Reading the registry's zip member: the ISA-L inflater gives zipfile's bytes and checks the CRC."""

import zipfile

import pytest

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.reader import open_csv_member
from covid_pipeline_tests.helpers.registry import real_rows, write_registry


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
