"""Long work says how far it has come: downloads (bytes, rate, ETA) and the load (rows read, loaded,
rejected, rows/s, and the ETA from the bytes of the uncompressed file read so far), about every few seconds
(a small interval here; no duration is asserted)."""

import logging
import re
import zipfile

import pytest

from benchmarks.generate_registry import write_registry
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.progress import PREFIX, load_line
from covid_pipeline.resources.sources import SourcesResource

DOWNLOAD = re.compile(
    rf"{PREFIX} cases: ([\d.,]+) MB of ([\d.,]+) MB \((\d+)%\), ([\d.,]+) MB/s, ETA (\d+ min \d\d s|\d+ s)$"
)
LOAD = re.compile(
    rf"{PREFIX} covid.cases load: ([\d,]+) rows read, ([\d,]+) loaded, ([\d,]+) rejected, ([\d,]+) rows/s; "
    r"([\d.,]+) MB of ([\d.,]+) MB \((\d+)%\), ETA (\d+ min \d\d s|\d+ s)$"
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


@pytest.mark.parametrize("name", ["Covid19Casos.zip", "Covid19Casos.csv"])
def test_a_load_logs_rows_rate_and_how_much_of_the_uncompressed_file_is_read(tmp_path, warehouse_url, name):
    zipped = tmp_path / "Covid19Casos.zip"
    summary = write_registry(zipped, 20_000, seed=5, bad_rows=40)
    size = zipfile.ZipFile(zipped).getinfo("Covid19Casos.csv").file_size  # uncompressed: 12 times the zip
    path = zipped if name.endswith(".zip") else zipfile.ZipFile(zipped).extract("Covid19Casos.csv", tmp_path)
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
    for read, loaded, rejected, rate, done, total, percent in counts:
        assert read == loaded + rejected and rate > 0
        assert total == round(size / 1e6, 1) and 0 < done <= total and abs(percent - 100 * done / total) < 3
    for column in (0, 4):  # rows read and megabytes read only grow
        assert [c[column] for c in counts] == sorted(c[column] for c in counts)
    read, loaded, rejected, *_ = counts[-1]
    assert read == report.rows_read == 20_000
    assert rejected == report.rows_rejected == summary["bad_rows"]
    assert loaded == report.rows_loaded + report.duplicate_rows  # duplicates are removed after the COPY
    # then each step after the COPY, with its seconds (minutes each at 29M rows)
    assert report.duplicate_rows > 0
    for done in (
        r"earlier occurrences of [\d,]+ repeated ids removed",
        "primary key and date index built",
        "covid.cases swapped in, rejects kept",
        "covid.cases analyzed",
    ):
        assert any(re.fullmatch(rf"{done} in \d+\.\d s", line) for line in lines), (done, lines)


def test_the_load_eta_is_the_time_left_at_the_rate_bytes_were_read():
    # 100 MB of 400 read in 10 s: 300 MB left at 10 MB/s
    line = load_line(1_000_000, 999_000, 1_000, 100_000_000, 400_000_000, 10.0)
    assert line == (
        "covid.cases load: 1,000,000 rows read, 999,000 loaded, 1,000 rejected, 100,000 rows/s; "
        "100.0 MB of 400.0 MB (25%), ETA 30 s"
    )
    assert load_line(10, 10, 0, 6_000_000, 6_000_000_000, 60.0).endswith("(0%), ETA 999 min 00 s")
