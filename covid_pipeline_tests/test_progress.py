"""Long work says how far it has come: downloads (bytes, rate, ETA) and the load (rows read, loaded,
rejected, rows/s), about every few seconds (a small interval here; no duration is asserted)."""

import logging
import re

from benchmarks.generate_registry import write_registry
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.progress import PREFIX
from covid_pipeline.resources.sources import SourcesResource

DOWNLOAD = re.compile(
    rf"{PREFIX} cases: ([\d.,]+) MB of ([\d.,]+) MB \((\d+)%\), ([\d.,]+) MB/s, ETA (\d+ min \d\d s|\d+ s)$"
)
LOAD = re.compile(
    rf"{PREFIX} covid.cases load: ([\d,]+) rows read, ([\d,]+) loaded, ([\d,]+) rejected, ([\d,]+) rows/s$"
)


def numbers(match: re.Match) -> list[float]:
    """The plain numbers of a progress line (not the ETA)."""
    return [float(g.replace(",", "")) for g in match.groups() if re.fullmatch(r"[\d.,]+", g)]


def test_a_slow_download_logs_bytes_rate_and_eta(http_server, tmp_path, caplog):
    data = bytes(range(256)) * 4096 * 3  # 3 MB
    url = http_server.publish("Covid19Casos.zip", data)
    http_server.throttle = (256 * 1024, 0.1)  # 12 pieces: about a second and a half
    sources = SourcesResource(cases_url=url, progress_seconds=0.3)

    with caplog.at_level(logging.INFO):
        fetched = sources.fetch("cases", tmp_path)

    assert fetched.size == len(data) and fetched.path.read_bytes() == data
    lines = [DOWNLOAD.search(r.getMessage()) for r in caplog.records if PREFIX in r.getMessage()]
    assert len(lines) >= 2 and all(lines), [r.getMessage() for r in caplog.records]
    done = [numbers(m)[0] for m in lines]
    assert done == sorted(done) and done[-1] <= len(data) / 1e6
    percents = []
    for match in lines:
        _, total, percent, rate = numbers(match)
        assert total == round(len(data) / 1e6, 1) and rate > 0 and 0 <= percent < 100
        percents.append(percent)
    assert percents == sorted(percents)


def test_a_download_of_unannounced_size_logs_bytes_and_rate(http_server, tmp_path, caplog):
    data = bytes(range(256)) * 4096 * 2
    url = http_server.publish("Covid19Casos.zip", data)
    http_server.bare, http_server.throttle = True, (256 * 1024, 0.1)  # no Content-Length: no ETA either

    with caplog.at_level(logging.INFO):
        fetched = SourcesResource(cases_url=url, progress_seconds=0.3).fetch("cases", tmp_path)

    assert fetched.size == len(data)
    lines = [r.getMessage() for r in caplog.records if PREFIX in r.getMessage()]
    assert lines and all(
        re.search(rf"{PREFIX} cases: [\d.,]+ MB \(size not announced\), [\d.,]+ MB/s$", line)
        for line in lines
    ), lines


def test_a_load_logs_rows_read_loaded_rejected_and_rate(tmp_path, warehouse_url):
    path = tmp_path / "Covid19Casos.zip"
    summary = write_registry(path, 20_000, seed=5, bad_rows=40)
    lines: list[str] = []

    report = load_cases(
        warehouse_url,
        path,
        source_sha256="progress",
        chunk_bytes=256 * 1024,
        progress_seconds=0,
        log=lines.append,
    )

    progress = [LOAD.search(line) for line in lines if line.startswith(PREFIX)]
    assert len(progress) >= 3 and all(progress), lines
    counts = [numbers(m) for m in progress]
    for read, loaded, rejected, rate in counts:
        assert read == loaded + rejected and rate > 0
    assert [c[0] for c in counts] == sorted(c[0] for c in counts)
    read, loaded, rejected, _ = counts[-1]
    assert read == report.rows_read == 20_000
    assert rejected == report.rows_rejected == summary["bad_rows"]
    assert loaded == report.rows_loaded + report.duplicate_rows  # duplicates are removed after the COPY
