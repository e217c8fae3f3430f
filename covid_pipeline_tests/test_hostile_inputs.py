"""Issue 13, part 2: hostile registry and georef files, fed through the asset graph (the path
`dagster asset materialize` takes) with table checksums before and after, plus a property test of
random corruptions through load_cases.

Each test names the defect (item number of the issue) it reproduces.
"""

import csv
import io
import shutil
import struct
import uuid
import zipfile
from datetime import date
from http.server import BaseHTTPRequestHandler

import psycopg
import pytest
from dagster import Failure
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.cli import sample_sources
from covid_pipeline.ingest.cleaning import clean_chunk
from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.ingest.reader import Chunk
from covid_pipeline.ingest.registry_format import SOURCE_NAMES
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.sources import DownloadError, SourcesResource
from covid_pipeline_tests.helpers.http import LoopbackHTTPServer
from covid_pipeline_tests.helpers.registry import format_line, real_rows, registry_text, row
from covid_pipeline_tests.helpers.warehouse import new_database, query, run_graph

SAMPLE = sample_sources()
GRAPH = ["raw_csv_s3", "provinces", "departments", "cleaned_cases", "daily_aggregates"]
TABLES = ("covid.cases", "covid.daily_aggregates", "covid.provinces", "covid.departments")
BASE_ROWS = 300


# --- files -------------------------------------------------------------------------------------------


def base_lines() -> list[str]:
    """The header and the first BASE_ROWS rows of the real 2020-11-23 sample, as SISA writes them."""
    return registry_text(real_rows(BASE_ROWS)).splitlines()


def line_of(values: dict) -> str:
    return format_line([values[c] for c in SOURCE_NAMES])


def zipped(path, data: bytes, member: str = "Covid19Casos.csv", extra: dict | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return path


def registry_zip(tmp_path, lines: list[str], name: str = "Covid19Casos.zip", newline: str = "\n"):
    return zipped(tmp_path / "hostile" / name, (newline.join(lines) + newline).encode())


# --- the graph ---------------------------------------------------------------------------------------


def materialize(url, folder, cases, provinces=None, departments=None, quality=None, selection=GRAPH):
    return run_graph(
        url,
        folder / "raw",
        str(cases),
        str(provinces or SAMPLE["COVID_PROVINCES_URL"]),
        str(departments or SAMPLE["COVID_DEPARTMENTS_URL"]),
        quality=quality,
        reports=str(folder / "reports"),
        selection=selection,
        raise_on_error=False,
    )


def failure_of(result, step: str) -> str:
    """The failure message of `step`, which failed once and was not retried."""
    failures = [e for e in result.all_events if e.is_step_failure]
    assert [e.step_key for e in failures] == [step]
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    data = failures[0].step_failure_data
    message = data.user_failure_data.description if data.user_failure_data else data.error.to_string()
    assert "Traceback" not in message, message
    return message


def checksums(url) -> dict:
    """Row count and a hash of every row of each table: equal only if no value changed."""
    sums = {}
    for table in TABLES:
        schema, name = table.split(".")
        statement = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
        )
        sums[table] = query(url, statement.format(sql.Identifier(schema, name)))[0]
    return sums


def rejects(url) -> list[tuple]:
    return query(
        url, "SELECT line_number, column_name, reason, raw_line FROM covid.rejected_cases ORDER BY 1"
    )


def loaded_ids(url) -> list[int]:
    return [r[0] for r in query(url, "SELECT case_id FROM covid.cases ORDER BY case_id")]


@pytest.fixture(scope="module")
def baseline(pg_server_url, tmp_path_factory):
    """A database and raw store after a good run on the base file (cloned for each test)."""
    folder = tmp_path_factory.mktemp("baseline")
    url = new_database(pg_server_url)
    cases = registry_zip(folder, base_lines())
    assert materialize(url, folder, cases).success
    yield url, folder


@pytest.fixture
def warehouse(baseline, pg_server_url, tmp_path):
    """(database url, folder): a copy of the baseline's database and raw store, and its checksums."""
    template, folder = baseline
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(psycopg.conninfo.conninfo_to_dict(template)["dbname"])
            )
        )
    shutil.copytree(folder / "raw", tmp_path / "raw")
    url = template.replace(psycopg.conninfo.conninfo_to_dict(template)["dbname"], name)
    yield url, tmp_path
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def run_hostile(warehouse, lines, **kwargs):
    """Materialize the graph on a registry of `lines`; returns the result and the checksums before."""
    url, folder = warehouse
    before = checksums(url)
    return materialize(url, folder, registry_zip(folder, lines), **kwargs), before


def changed_line(index: int, **changes) -> tuple[list[str], int]:
    """The base file with data row `index` changed; returns the lines and that row's physical line."""
    lines = base_lines()
    lines[index + 1] = line_of(real_rows(BASE_ROWS)[index] | changes)
    return lines, index + 2


# --- item 1: dates -----------------------------------------------------------------------------------


def test_1_year_0000_is_rejected_and_the_aggregates_are_built(warehouse):
    url, _ = warehouse
    lines, line = changed_line(10, fecha_apertura="0000-01-01")
    lines[30] = line_of(real_rows(BASE_ROWS)[29] | {"fecha_diagnostico": "2101-01-01"})
    result, _ = run_hostile(warehouse, lines)
    assert result.success
    found = [(r[0], r[1]) for r in rejects(url)]
    assert found == [(line, "fecha_apertura"), (31, "fecha_diagnostico")]
    assert "between 1900 and 2100" in rejects(url)[0][2]
    notified = query(url, "SELECT sum(notified) FROM covid.daily_aggregates")[0][0]
    assert notified == query(url, "SELECT count(*) FROM covid.cases")[0][0] == BASE_ROWS - 2


def test_1_a_failure_after_cleaned_cases_says_the_tables_are_out_of_step(warehouse):
    from covid_pipeline.assets.failures import behind_cases

    url, _ = warehouse
    with (
        pytest.raises(Failure) as failure,
        failures_for_people(behind_cases("covid.daily_aggregates")),
        psycopg.connect(url) as conn,
    ):
        conn.execute("SELECT date '4714-11-24 BC' - 1")  # the DataError daily_aggregates met
    message = failure.value.description
    assert "covid.daily_aggregates was left as it was, built from the previous load" in message
    assert "covid.cases may already hold the new one" in message and "re-run" in message
    assert "out of range" in message and failure.value.allow_retries is False


# --- item 2: broken quoting --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "broken"),
    [
        ("id_evento_caso", '"2200000"1'),
        ("fallecido", '"S"I'),
        ("residencia_departamento_nombre", '"La "Matanza"'),
        ("residencia_departamento_nombre", 'La "Matanza'),
    ],
)
def test_2_text_outside_quotes_rejects_the_row_naming_the_column(warehouse, column, broken):
    url, _ = warehouse
    lines = base_lines()
    fields = next(csv.reader([lines[6]]))
    position = SOURCE_NAMES.index(column)
    quoted = ['"' + v.replace('"', '""') + '"' if v else "" for v in fields]
    quoted[position] = broken
    lines[6] = ",".join(quoted)
    result, before = run_hostile(warehouse, lines)
    assert result.success
    [(line, named, reason, raw)] = rejects(url)
    assert (line, named, raw) == (7, column, lines[6])
    assert "quote" in reason
    assert 22000001 not in loaded_ids(url)
    # every other row is loaded exactly as in the baseline
    assert query(url, "SELECT count(*) FROM covid.cases")[0][0] == before["covid.cases"][0] - 1


# --- item 3: raw exceptions --------------------------------------------------------------------------


def test_3_a_nul_in_a_field_rejects_the_row_and_a_rejected_row_may_hold_a_nul(warehouse):
    url, _ = warehouse
    lines = base_lines()
    lines[3] = lines[3].replace('"Argentina"', '"Argen\0tina"', 1)
    lines[8] = lines[8][:40] + "\0"  # cut short, with a NUL
    result, _ = run_hostile(warehouse, lines)
    assert result.success
    found = rejects(url)
    assert [r[0] for r in found] == [4, 9] and found[0][1] == "residencia_pais_nombre"
    assert "NUL" in found[0][2]
    assert found[1][3] == lines[8][:40] + "\u2400"  # shown, since PostgreSQL's text cannot hold NUL


def test_3_an_unquoted_line_over_1_mb_is_rejected_alone(warehouse):
    url, _ = warehouse
    lines = base_lines()
    lines[5] = lines[5] + "," + "x" * (1 << 21)
    result, _ = run_hostile(warehouse, lines)
    assert result.success
    [(line, _, reason, _)] = rejects(url)
    assert line == 6 and "longer than 1 MB" in reason
    assert query(url, "SELECT count(*) FROM covid.cases")[0][0] == BASE_ROWS - 1


def test_3_cr_only_line_endings_are_refused_naming_the_fix(warehouse):
    url, folder = warehouse
    before = checksums(url)
    result = materialize(url, folder, registry_zip(folder, base_lines(), newline="\r"))
    message = failure_of(result, "cleaned_cases")
    assert "Covid19Casos.zip!Covid19Casos.csv, line 1: lines end with a lone CR" in message
    assert "covid.cases was left as it was" in message
    assert checksums(url) == before


def encrypted(path):
    """A zip whose member is flagged as encrypted (what `zip -e` writes), from a plain one."""
    data = bytearray(path.read_bytes())
    for signature, flag_offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        flags = struct.unpack_from("<H", data, start + flag_offset)[0]
        struct.pack_into("<H", data, start + flag_offset, flags | 0x1)
    path.write_bytes(bytes(data))
    return path


def test_3_an_encrypted_zip_is_refused_without_retry(warehouse):
    url, folder = warehouse
    before = checksums(url)
    result = materialize(url, folder, encrypted(registry_zip(folder, base_lines())))
    message = failure_of(result, "cleaned_cases")
    assert message.startswith("Covid19Casos.zip: Covid19Casos.csv inside the zip is encrypted")
    assert checksums(url) == before


def georef_with(tmp_path, source: str, line: int, column: str, value: str):
    with open(SAMPLE[source], encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[line - 2][column] = value
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "georef" / ("provincias.csv" if "PROVINCES" in source else "departamentos.csv")
    path.parent.mkdir(exist_ok=True)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "column", "value", "expected"),
    [
        ("COVID_DEPARTMENTS_URL", "id", "99999999999", "departamentos.csv, line 5, column id: cannot read"),
        ("COVID_PROVINCES_URL", "nombre", "Sal\0ta", "provincias.csv, line 5, column nombre: contains a NUL"),
    ],
)
def test_3_georef_overflow_and_nul_are_refused_with_line_and_column(
    warehouse, source, column, value, expected
):
    url, folder = warehouse
    before = checksums(url)
    georef = georef_with(folder, source, 5, column, value)
    kwargs = {"departments" if "DEPARTMENTS" in source else "provinces": georef}
    table = "departments" if "DEPARTMENTS" in source else "provinces"
    result = materialize(url, folder, registry_zip(folder, base_lines()), **kwargs)
    message = failure_of(result, table)
    assert message.startswith(expected), message
    assert checksums(url) == before


# --- item 4: georef gate -----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "keep"), [("COVID_PROVINCES_URL", 1), ("COVID_DEPARTMENTS_URL", 29)])
def test_4_a_georef_file_that_loses_rows_is_refused_naming_the_setting(warehouse, source, keep):
    url, folder = warehouse
    before = checksums(url)
    table = "provinces" if "PROVINCES" in source else "departments"
    cut = folder / "georef" / SAMPLE[source].rsplit("/", 1)[-1]
    cut.parent.mkdir()
    with open(SAMPLE[source], encoding="utf-8") as handle:
        cut.write_text("".join(handle.readlines()[:keep]), encoding="utf-8")
    result = materialize(url, folder, registry_zip(folder, base_lines()), **{table: cut})
    message = failure_of(result, table)
    assert f"covid.{table}" in message and f"covid.{table} was left as it was" in message
    assert "COVID_MAX_REFERENCE_ROW_DROP" in message or "no rows after the header" in message
    assert checksums(url) == before
    # the setting lets a real shrink through
    relaxed = QualityResource(max_reference_row_drop=1.0)
    if keep > 1:
        assert materialize(
            url, folder, registry_zip(folder, base_lines()), quality=relaxed, **{table: cut}
        ).success
        assert query(url, f"SELECT count(*) FROM covid.{table}")[0][0] == keep - 1


# --- item 5: an accepted drop is the new baseline ----------------------------------------------------


def test_5_a_drop_accepted_once_does_not_block_later_runs(warehouse):
    url, folder = warehouse
    small = registry_zip(folder, base_lines()[:3])
    assert materialize(url, folder, small, quality=QualityResource(max_row_drop=1.0)).success
    again = materialize(url, folder, small)  # the same file, default settings
    assert again.success
    check = check_result(again, "row_count_kept")
    assert check.passed and check.metadata["max_row_drop_accepted_by_load"].value == 1.0


def test_5_a_failing_row_count_names_the_figures_and_the_setting(warehouse):
    from covid_pipeline.checks.cases import row_count_kept
    from covid_pipeline.resources.warehouse import WarehouseResource

    url, _ = warehouse
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM covid.cases WHERE case_id IN (SELECT case_id FROM covid.cases LIMIT 100)")
        conn.execute(
            "INSERT INTO covid.loads (source_sha256, source_bytes, rows_read, rows_loaded, rows_rejected,"
            " duplicate_rows, started_at, max_row_drop) VALUES ('x', 1, 200, 200, 0, 0, now(), 0.1)"
        )
    result = row_count_kept(WarehouseResource(database_url=url), QualityResource())
    assert not result.passed
    assert f"{BASE_ROWS - 100:,} rows, 33.3% fewer than the {BASE_ROWS:,}" in result.description
    assert "COVID_MAX_ROW_DROP" in result.description


# --- item 6: a stray quote rejects its row alone, across chunks too ------------------------------------


def cascading_file(tmp_path, multiline_at: int):
    """Stray quote at row 4; a valid record with a quoted newline at row `multiline_at`."""
    rows = real_rows(40)
    rows[multiline_at] = rows[multiline_at] | {"clasificacion": "Caso confirmado\npor laboratorio"}
    lines = registry_text(rows).split("\n")
    lines[5] = lines[5][:3] + '"' + lines[5][3:]  # row 4, line 6: "10"13..., an odd number of quotes
    path = tmp_path / f"cascade{multiline_at}.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path, rows


@pytest.mark.parametrize("chunk_bytes", [700, 1500, 4000, 1 << 20])
def test_6_a_stray_quote_rejects_its_row_alone_and_the_multiline_record_loads(
    warehouse_url, tmp_path, chunk_bytes
):
    path, rows = cascading_file(tmp_path, multiline_at=9)
    report = load_cases(warehouse_url, path, source_sha256="x", chunk_bytes=chunk_bytes)
    assert [(r.line_number, r.column_name) for r in report.sample_rejects] == [(6, "id_evento_caso")]
    assert report.rows_loaded == len(rows) - 1
    assert query(
        warehouse_url,
        "SELECT classification, source_line FROM covid.cases WHERE case_id = %s",
        (int(rows[9]["id_evento_caso"]),),
    ) == [("Caso confirmado\npor laboratorio", 11)]


# --- item 8: integers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "fits", "overflows"),
    [
        ("id_evento_caso", "9223372036854775807", "9223372036854775808"),
        ("id_evento_caso", "0009223372036854775807", "99999999999999999999"),
        ("residencia_departamento_id", "2147483647", "2147483648"),
    ],
)
def test_8_an_integer_gets_the_same_verdict_whatever_its_neighbours(column, fits, overflows):
    def verdicts(*values):
        rows = [row(id_evento_caso=str(i + 1)) | {column: v} for i, v in enumerate(values)]
        data = ("\n".join(line_of(r) for r in rows) + "\n").encode()
        cleaned = clean_chunk(Chunk(data, 2))
        return {r.line_number for r in cleaned.rejects}

    assert verdicts(fits) == set()
    assert verdicts(fits, overflows) == {3}
    assert verdicts(overflows) == {2}


# --- item 9: zip members ------------------------------------------------------------------------------


def test_9_a_macos_zip_is_read_by_the_registry_members_name(warehouse):
    url, folder = warehouse
    data = ("\n".join(base_lines()[:-1]) + "\n").encode()
    mac = zipped(
        folder / "mac" / "Covid19Casos.zip", data, extra={"__MACOSX/._Covid19Casos.csv": b"\0\5\26\7"}
    )
    assert materialize(url, folder, mac).success
    assert query(url, "SELECT count(*) FROM covid.cases")[0][0] == BASE_ROWS - 1


def test_9_a_zip_of_another_csv_is_read_saying_so(warehouse_url, tmp_path):
    other = zipped(
        tmp_path / "Covid19Casos.zip", ("\n".join(base_lines()) + "\n").encode(), member="data.csv"
    )
    said = []
    load_cases(warehouse_url, other, source_sha256="x", log=said.append)
    assert "Covid19Casos.zip: no Covid19Casos.csv inside the zip; reading its only CSV, data.csv" in said


# --- item 10: diagnoses ------------------------------------------------------------------------------


def test_10_utf16_without_bom_is_read_and_gzip_is_named(warehouse_url, tmp_path):
    import gzip

    text = "\n".join(base_lines()) + "\n"
    utf16 = tmp_path / "utf16.csv"
    utf16.write_bytes(text.encode("utf-16-le"))  # no BOM
    report = load_cases(warehouse_url, utf16, source_sha256="utf16")
    assert (report.encoding, report.rows_loaded) == ("utf-16-le", BASE_ROWS)
    packed = tmp_path / "Covid19Casos.csv"
    packed.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(SourceFormatError, match="Covid19Casos.csv: this is a gzip file"):
        load_cases(warehouse_url, packed, source_sha256="gz")


class HtmlPage(BaseHTTPRequestHandler):
    """A web server answering every request with 200 and an HTML page (a moved or error page)."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b"<!DOCTYPE html><html><body>Mantenimiento</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_10_an_html_page_served_with_200_is_not_stored_as_the_publication(warehouse, tmp_path):
    url, folder = warehouse
    manifest = (folder / "raw" / "manifest.json").read_bytes()
    stored = sorted(p.name for p in (folder / "raw").rglob("*"))
    with LoopbackHTTPServer(HtmlPage) as server:
        page = f"{server.base_url}/Covid19Casos.zip"
        with pytest.raises(DownloadError, match="answered with a web page"):
            SourcesResource(cases_url=page).fetch("cases", tmp_path)
        result = materialize(url, folder, page, selection=["raw_csv_s3"])
    assert "answered with a web page (text/html" in failure_of(result, "raw_csv_s3")
    assert (folder / "raw" / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in (folder / "raw").rglob("*")) == stored
    # the page alone, from a file (no content type), is recognised by its first bytes
    saved = tmp_path / "page.zip"
    saved.write_bytes(b"\n  <!doctype html><html></html>")
    with pytest.raises(DownloadError, match="an HTML/XML page"):
        SourcesResource(cases_url=str(saved)).fetch("cases", tmp_path)


# --- item 11: multi-line rejects keep the whole record -----------------------------------------------


def test_11_a_rejected_multiline_record_keeps_every_line(warehouse):
    url, _ = warehouse
    lines = base_lines()
    values = real_rows(BASE_ROWS)[20] | {"clasificacion": "Caso\nsospechoso", "fecha_apertura": "2020-13-45"}
    lines[21] = line_of(values)
    result, _ = run_hostile(warehouse, lines)
    assert result.success
    [(line, column, _, raw)] = rejects(url)
    assert (line, column) == (22, "fecha_apertura")
    assert raw == lines[21]  # both physical lines


# --- item 12: settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [("COVID_MAX_ROW_DROP", "10%"), ("COVID_MAX_REJECTED_SHARE", "5"), ("COVID_EARLIEST_DATE", "2020")],
)
def test_12_a_bad_setting_names_the_variable(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match=f"{variable}='{value}' is "):
        QualityResource.from_env()


# --- item 7 and 13: checks ----------------------------------------------------------------------------


def check_result(result, name):
    [evaluation] = [
        e.asset_check_evaluation_data
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and e.asset_check_evaluation_data.check_name == name
    ]
    return evaluation


def test_7_a_far_future_ultima_actualizacion_does_not_lift_the_dates_bound(warehouse):
    """Future dates are rejected at load (a row's ultima_actualizacion after the day of the load, a case date
    after its row's ultima_actualizacion); the check's bound stays the publication's date."""
    url, _ = warehouse
    lines, _ = changed_line(3, ultima_actualizacion="2099-12-31")
    lines[10] = line_of(real_rows(BASE_ROWS)[9] | {"fecha_apertura": "2030-06-01"})
    lines[20] = line_of(real_rows(BASE_ROWS)[19] | {"fecha_internacion": "2019-06-01"})  # before the epidemic
    result, _ = run_hostile(warehouse, lines)
    assert result.success
    assert [(r[0], r[1]) for r in rejects(url)] == [(5, "ultima_actualizacion"), (11, "fecha_apertura")]
    check = check_result(result, "dates_in_range")
    published = date.fromisoformat(real_rows(1)[0]["ultima_actualizacion"])
    assert check.metadata["range"].value == f"2020-01-01 .. {published}"
    assert check.metadata["outside_range"].value == 1  # the 2019 date: dates before the epidemic are kept


def test_13_case_and_spacing_variants_are_normalised_and_unknown_values_reported(warehouse):
    url, _ = warehouse
    lines = base_lines()
    base = real_rows(BASE_ROWS)
    variants = {2: "confirmado", 3: "CONFIRMADO", 4: "Confirmado ", 5: "Confirmadx"}
    for index, value in variants.items():
        lines[index + 1] = line_of(
            base[index] | {"clasificacion_resumen": value, "sexo": " f", "fallecido": "si"}
        )
    result, _ = run_hostile(warehouse, lines)
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
    check = check_result(result, "categorical_values_known")
    assert not check.passed and check.metadata["cases_with_unknown_values"].value == 1
    assert "'Confirmadx'" in check.metadata["most_frequent_unknown_values"].value


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


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["flip", "insert_quote", "remove_quote", "cut_line", "nul"]),
    position=st.integers(
        min_value=len(CLEAN_TEXT.split("\n", 1)[0]) + 1, max_value=len(CLEAN_TEXT.encode()) - 1
    ),
    byte=st.integers(min_value=0, max_value=255),
    chunk_bytes=st.sampled_from([1 << 20, 1500]),  # also across chunk boundaries
)
def test_random_corruption_rejects_rows_or_refuses_never_changes_a_value(
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


def checksums_of_cases(url):
    return query(
        url,
        "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM covid.cases t",
    )
