"""A registry that is not a plain CSV or zip is named as what it is: gzip, CR-only line endings and HTML pages
are refused saying so (an HTML page before it reaches the raw store), UTF-16 without a BOM is read."""

import gzip
from http.server import BaseHTTPRequestHandler

import pytest

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.resources.sources import DownloadError, SourcesResource
from covid_pipeline_tests.helpers.http import LoopbackHTTPServer
from covid_pipeline_tests.helpers.short_registry import (
    BASE_ROWS,
    UP_TO_AGGREGATES,
    base_lines,
    checksums,
    registry_zip,
)
from covid_pipeline_tests.helpers.warehouse import refusal, run_graph


def test_cr_only_line_endings_are_refused_naming_the_fix(short_warehouse):
    url, folder = short_warehouse
    before = checksums(url)
    cases = registry_zip(folder, base_lines(), newline="\r")
    result = run_graph(url, folder, cases=cases, selection=UP_TO_AGGREGATES, raise_on_error=False)
    message = refusal(result, "cleaned_cases")
    assert "Covid19Casos.zip!Covid19Casos.csv, line 1: lines end with a lone CR" in message
    assert "covid.cases was left as it was" in message
    assert checksums(url) == before


def test_utf16_without_a_bom_is_read_and_gzip_is_named(warehouse_url, tmp_path):
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


def test_an_html_page_served_with_200_is_not_stored_as_the_publication(short_warehouse, tmp_path):
    url, folder = short_warehouse
    manifest = (folder / "raw" / "manifest.json").read_bytes()
    stored = sorted(p.name for p in (folder / "raw").rglob("*"))
    with LoopbackHTTPServer(HtmlPage) as server:
        page = f"{server.base_url}/Covid19Casos.zip"
        with pytest.raises(DownloadError, match="answered with a web page"):
            SourcesResource(cases_url=page).fetch("cases", tmp_path)
        result = run_graph(url, folder, cases=page, selection=["raw_csv_s3"], raise_on_error=False)
    assert "answered with a web page (text/html" in refusal(result, "raw_csv_s3")
    assert (folder / "raw" / "manifest.json").read_bytes() == manifest
    assert sorted(p.name for p in (folder / "raw").rglob("*")) == stored
    # the page alone, from a file (no content type), is recognised by its first bytes
    saved = tmp_path / "page.zip"
    saved.write_bytes(b"\n  <!doctype html><html></html>")
    with pytest.raises(DownloadError, match="an HTML/XML page"):
        SourcesResource(cases_url=str(saved)).fetch("cases", tmp_path)
