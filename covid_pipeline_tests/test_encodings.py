"""Every encoding the registry has been published in, through a full run of the graph: the values loaded are
exactly those of the UTF-8 registry (the bundled sample, loaded once for the session)."""

import pytest

from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE, read_records, real_rows, write_registry
from covid_pipeline_tests.helpers.warehouse import fingerprint, metadata_of, query, run_graph

SAMPLE = sample_sources()
AS_COMMITTED = REAL_DATA / "covid19casos_tp_covid_2020-11-23_as_committed.csv"


def load(url, tmp_path, cases):
    """A run of the graph on `cases`, given as a file:// URL; the metadata of cleaned_cases."""
    result = run_graph(url, tmp_path, cases=cases.as_uri())
    assert result.success
    return metadata_of(result, "cleaned_cases")


@pytest.mark.parametrize(
    ("encoding", "newline", "detected"),
    [("utf-16-le", "\r\n", "utf-16-le"), ("cp1252", "\r\n", "windows-1252")],
)
def test_a_re_encoded_registry_loads_the_same_values(
    database_url, sample_warehouse, tmp_path, encoding, newline, detected
):
    rows = real_rows()
    cases = write_registry(tmp_path / "src" / "Covid19Casos.csv", rows, encoding=encoding, newline=newline)
    if encoding == "utf-16-le":
        assert cases.read_bytes()[:2] == b"\xff\xfe"  # with its BOM, as SISA published it
    cleaned = load(database_url, tmp_path, cases)
    assert cleaned["encoding"] == detected
    assert (cleaned["rows_loaded"], cleaned["rows_rejected"]) == (len(rows), 0)
    # accents included (Cañuelas, Años, Público), every value as the UTF-8 registry's
    assert fingerprint(database_url, "covid.cases") == fingerprint(sample_warehouse, "covid.cases")
    assert query(database_url, "SELECT count(*) FROM covid.cases WHERE age_unit = 'Años'") == [
        (sum(r["edad_años_meses"] == "Años" for r in rows),)
    ]


def test_the_double_encoded_registry_loads_as_the_repaired_one(database_url, sample_warehouse, tmp_path):
    repaired = read_records(REAL_SAMPLE)
    lines = AS_COMMITTED.read_bytes().rstrip(b"\n").split(b"\n")
    assert "Ã" in lines[0].decode("utf-8")  # the damage really is there
    cleaned = load(database_url, tmp_path, AS_COMMITTED)
    assert cleaned["encoding"] == "utf-8 (double-encoded, repaired)"
    assert (cleaned["rows_read"], cleaned["rows_loaded"], cleaned["rows_rejected"]) == (
        len(lines) - 1,
        len(repaired),
        1,
    )
    # the one reject is the cut-off last line, kept with its text
    [(line, raw)] = query(database_url, "SELECT line_number, raw_line FROM covid.rejected_cases")
    assert line == len(lines)
    assert raw == lines[-1].decode("utf-8").encode("latin-1").decode("utf-8")
    assert fingerprint(database_url, "covid.cases") == fingerprint(sample_warehouse, "covid.cases")
