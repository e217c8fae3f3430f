"""Faults survived for real: a backend terminated mid-load, the loading process killed, downloads that
drop or never finish, damaged files. Each leaves the previous tables as they were; the next run succeeds.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest

from covid_pipeline.cli import sample_sources
from covid_pipeline.ingest.loader import load_cases
from covid_pipeline.resources.sources import DownloadError, SourcesResource
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE, row, write_large_registry, write_registry
from covid_pipeline_tests.helpers.warehouse import checks_of, copying_backend, fingerprint, query, run_graph

SNAPSHOT = "SELECT count(*), sum(case_id), max(source_line) FROM covid.cases"
SAMPLE = sample_sources()


@pytest.fixture
def loaded(warehouse_url):
    """A warehouse holding the real sample, and its fingerprint."""
    load_cases(warehouse_url, REAL_SAMPLE, source_sha256="good")
    return warehouse_url, query(warehouse_url, SNAPSHOT)


@pytest.fixture(scope="module")
def large_registry(tmp_path_factory):
    return write_large_registry(tmp_path_factory.mktemp("large") / "Covid19Casos.csv", copies=20)


def kill_mid_copy(url: str, process: subprocess.Popen) -> None:
    """SIGKILL `process` once a COPY into the database is well under way."""
    try:
        copying_backend(url)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(60)
    assert process.returncode == -signal.SIGKILL


def assert_untouched_and_reloadable(url, snapshot):
    assert query(url, SNAPSHOT) == snapshot
    assert query(url, "SELECT count(*) FROM covid.loads") == [(1,)]
    assert query(url, "SELECT to_regclass('covid.cases__incoming')") == [(None,)]
    report = load_cases(url, REAL_SAMPLE, source_sha256="next", force=True)
    assert report.rows_loaded == 10_075


def test_a_backend_terminated_mid_copy_leaves_the_previous_tables(loaded, large_registry):
    url, snapshot = loaded
    outcome = {}

    def load():
        try:
            load_cases(url, large_registry, source_sha256="large", chunk_bytes=256 * 1024)
        except Exception as exc:  # what the loading thread saw
            outcome["error"] = exc

    loader = threading.Thread(target=load)
    loader.start()
    pid = copying_backend(url)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    loader.join(60)
    assert isinstance(outcome.get("error"), psycopg.OperationalError)
    assert_untouched_and_reloadable(url, snapshot)


def test_a_backend_terminated_while_swapping_in_leaves_the_previous_tables(loaded, tmp_path):
    url, snapshot = loaded
    new = write_registry(
        tmp_path / "Covid19Casos.zip", [row(id_evento_caso=str(i)) for i in range(1, 10_001)]
    )
    outcome = {}
    with psycopg.connect(url) as reader:
        # A reader's open transaction holds covid.cases: the load copies everything, then waits to swap.
        reader.execute("SELECT count(*) FROM covid.cases").fetchone()

        def load():
            try:
                load_cases(url, new, source_sha256="new")
            except Exception as exc:
                outcome["error"] = exc

        loader = threading.Thread(target=load)
        loader.start()
        with psycopg.connect(url, autocommit=True) as admin:
            pid = None
            while pid is None and loader.is_alive():
                found = admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()
                pid = found and found[0]
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        loader.join(60)
        assert query(url, SNAPSHOT) == snapshot  # seen by another session while the reader still holds on
    assert isinstance(outcome.get("error"), psycopg.OperationalError)
    assert_untouched_and_reloadable(url, snapshot)


def test_a_loading_process_killed_mid_copy_leaves_the_previous_tables(loaded, large_registry):
    url, snapshot = loaded
    code = (
        "import sys; from covid_pipeline.ingest.loader import load_cases; "
        "load_cases(sys.argv[1], sys.argv[2], source_sha256='killed', chunk_bytes=256 * 1024)"
    )
    kill_mid_copy(url, subprocess.Popen([sys.executable, "-c", code, url, str(large_registry)]))
    # the orphaned backend notices its client is gone and rolls back; the next load waits for it
    assert_untouched_and_reloadable(url, snapshot)


# What a load writes, and what is built from it: none of it may move when a load is killed.
LOAD_TABLES = (
    "covid.cases",
    "covid.loads",
    "covid.rejected_cases",
    "covid.load_dates",
    "covid.load_values",
    "covid.load_places",
    "covid.load_outcomes",
    "covid.daily_aggregates",
)


def graph_command(url: str, tmp_path, cases: str) -> tuple[list[str], dict]:
    """`dagster asset materialize --select '*'` as a user runs it, on `cases`, into the database at `url`."""
    (tmp_path / "dagster").mkdir(exist_ok=True)
    env = (
        {k: v for k, v in os.environ.items() if not k.startswith("COVID_")}
        | SAMPLE
        | {
            "COVID_CASES_URL": cases,
            "COVID_DATABASE_URL": url,
            "COVID_HOME": str(tmp_path / "home"),
            "DAGSTER_HOME": str(tmp_path / "dagster"),
            # the registries here are many times the sample on purpose: the growth gate would refuse them
            "COVID_MAX_ROW_GROWTH": "100",
        }
    )
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "covid_pipeline.definitions"]
    return [*command, "--select", "*"], env


@pytest.mark.slow
def test_the_graph_killed_mid_copy_leaves_every_table_and_the_next_run_loads(sample_copy, tmp_path):
    url = sample_copy  # the bundled sample, loaded by the graph
    before = {table: fingerprint(url, table) for table in LOAD_TABLES}
    cases = write_large_registry(tmp_path / "Covid19Casos.csv", copies=20)
    command, env = graph_command(url, tmp_path, str(cases))
    kill_mid_copy(
        url, subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )
    # the orphaned backend notices its client is gone and rolls back: nothing of the load stays behind
    deadline = time.monotonic() + 60
    while (
        query(url, "SELECT to_regclass('covid.cases__incoming')") != [(None,)] and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert query(url, "SELECT to_regclass('covid.cases__incoming')") == [(None,)]
    assert {table: fingerprint(url, table) for table in LOAD_TABLES} == before

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert query(url, "SELECT count(*) FROM covid.cases") == [(20 * 10_075,)]
    assert query(url, "SELECT count(*), max(rows_loaded) FROM covid.loads") == [(2, 20 * 10_075)]
    # the checks after the re-run read the counts the re-run recorded, and pass
    checks = run_graph(url, tmp_path, cases=cases)
    assert all(check.passed for check in checks_of(checks).values())


def test_a_download_from_a_server_without_ranges_starts_over(http_server, tmp_path):
    data = write_registry(
        tmp_path / "c.zip", [row(id_evento_caso=str(i)) for i in range(1, 3001)]
    ).read_bytes()
    url = http_server.publish("Covid19Casos.zip", data)
    http_server.ranges = False
    http_server.cut_after["Covid19Casos.zip"] = (len(data) // 2, 1)
    fetched = SourcesResource(cases_url=url, backoff_seconds=0.01).fetch("cases", tmp_path)
    assert fetched.path.read_bytes() == data and fetched.size == len(data)
    assert [h.get("Range") for m, _, h in http_server.requests if m == "GET"] == [None, None]


def test_a_download_that_keeps_dropping_fails_the_run_and_keeps_the_raw_store(
    database_url, http_server, tmp_path
):
    cases = http_server.publish(
        "Covid19Casos.zip", (REAL_DATA / "covid19casos_globaldothealth_sample_2021-03.csv").read_bytes()
    )
    assert run_graph(database_url, tmp_path, cases=cases).success
    manifest = (tmp_path / "raw" / "manifest.json").read_bytes()
    http_server.publish("Covid19Casos.zip", write_registry(tmp_path / "n.zip", [row()] * 30).read_bytes())
    http_server.cut_after["Covid19Casos.zip"] = (100, 99)
    result = run_graph(database_url, tmp_path, cases=cases, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert failure.step_key == "raw_csv_s3" and "failed after 5 attempts" in description
    assert "raw store" in description and "left as they were" in description
    assert (tmp_path / "raw" / "manifest.json").read_bytes() == manifest
    assert query(database_url, "SELECT count(*) FROM covid.cases") == [(16,)]


def test_fetch_gives_up_with_the_url_and_attempts(http_server, tmp_path):
    url = http_server.publish("Covid19Casos.zip", b"x" * 5000)
    http_server.cut_after["Covid19Casos.zip"] = (10, 99)
    with pytest.raises(
        DownloadError, match=r"cases: download of http://127.0.0.1:\d+/Covid19Casos.zip failed after 3"
    ):
        SourcesResource(cases_url=url, retries=3, backoff_seconds=0.01).fetch("cases", tmp_path)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("cut_zip", "Covid19Casos.zip: the zip archive is truncated or corrupt"),
        (
            "stray_latin1",
            "Covid19Casos.csv, line 3, column {column} (CSV field 4, edad_años_meses): byte 0xf1 is not",
        ),
        ("drifted_header", "Covid19Casos.csv, line 1: the header does not match"),
    ],
)
def test_bad_input_fails_the_run_with_file_line_column_and_keeps_the_tables(
    sample_copy, tmp_path, damage, expected
):
    database_url = sample_copy  # the bundled sample, loaded by the graph
    before = query(database_url, SNAPSHOT)
    rows = [row(id_evento_caso=str(i)) for i in range(1, 11_001)]
    if damage == "cut_zip":
        bad = write_registry(tmp_path / "bad" / "Covid19Casos.zip", rows)
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    elif damage == "stray_latin1":  # one line re-saved as Latin-1 in a UTF-8 file
        bad = write_registry(tmp_path / "bad" / "Covid19Casos.csv", rows)
        lines = bad.read_bytes().split(b"\n")
        lines[2] = lines[2].replace("Años".encode(), "Años".encode("latin-1"))
        bad.write_bytes(b"\n".join(lines))
        expected = expected.format(column=lines[2].index(b"\xf1") + 1)
    else:
        bad = write_registry(tmp_path / "bad" / "Covid19Casos.csv", rows, header=["id", *rows[0]][:25])
    result = run_graph(database_url, tmp_path, cases=bad, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    description = failure.step_failure_data.user_failure_data.description
    assert failure.step_key == "cleaned_cases"
    assert description.startswith(expected), description
    assert "covid.cases was left as it was" in description
    assert "Traceback" not in description
    assert query(database_url, SNAPSHOT) == before
