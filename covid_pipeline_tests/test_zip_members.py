"""Which file of a zip is the registry: the member `Covid19Casos.csv` (macOS's `__MACOSX/` copies ignored), else
the only CSV, saying so; an encrypted zip is named as such, and refused without a retry."""

import struct

from covid_pipeline.ingest.loader import load_cases
from covid_pipeline_tests.helpers.short_registry import (
    BASE_ROWS,
    UP_TO_AGGREGATES,
    base_lines,
    checksums,
    registry_zip,
    zipped,
)
from covid_pipeline_tests.helpers.warehouse import query, refusal, run_graph


def test_a_macos_zip_is_read_by_the_registry_members_name(short_warehouse):
    url, folder = short_warehouse
    data = ("\n".join(base_lines()[:-1]) + "\n").encode()
    mac = zipped(
        folder / "mac" / "Covid19Casos.zip", data, extra={"__MACOSX/._Covid19Casos.csv": b"\0\5\26\7"}
    )
    assert run_graph(url, folder, cases=mac, selection=UP_TO_AGGREGATES).success
    assert query(url, "SELECT count(*) FROM covid.cases")[0][0] == BASE_ROWS - 1


def test_a_zip_of_another_csv_is_read_saying_so(warehouse_url, tmp_path):
    other = zipped(
        tmp_path / "Covid19Casos.zip", ("\n".join(base_lines()) + "\n").encode(), member="data.csv"
    )
    said = []
    load_cases(warehouse_url, other, source_sha256="x", log=said.append)
    assert "Covid19Casos.zip: no Covid19Casos.csv inside the zip; reading its only CSV, data.csv" in said


def encrypted(path):
    """A zip whose member is flagged as encrypted (what `zip -e` writes), from a plain one."""
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        flags = struct.unpack_from("<H", data, start + flag_offset)[0]
        struct.pack_into("<H", data, start + flag_offset, flags | 0x1)
    path.write_bytes(bytes(data))
    return path


def test_an_encrypted_zip_is_refused_without_retry(short_warehouse):
    url, folder = short_warehouse
    before = checksums(url)
    locked = encrypted(registry_zip(folder, base_lines()))
    result = run_graph(url, folder, cases=locked, selection=UP_TO_AGGREGATES, raise_on_error=False)
    message = refusal(result, "cleaned_cases")
    assert message.startswith("Covid19Casos.zip: Covid19Casos.csv inside the zip is encrypted")
    assert checksums(url) == before
