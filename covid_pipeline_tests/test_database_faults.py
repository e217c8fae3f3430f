"""A full database disk, for real: the embedded server's data directory on a small tmpfs that fills up.

The load fails once, saying that the database's disk is full and where, without a retry; the previous tables
stay; the loading table's files go with its rolled-back transaction (nothing is left behind that no catalog
knows); and once there is space again the next run works, with no setting changed. A server that cannot even
start on a full disk says so in one line, and starts by itself once space is back.
"""

import os
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterEventType

from covid_pipeline.cli import sample_sources
from covid_pipeline.resources.embedded_postgres import embedded_server_url, start_server
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline_tests.helpers.filesystems import small_disk
from covid_pipeline_tests.helpers.registry import read_records, write_large_registry
from covid_pipeline_tests.helpers.warehouse import failure_of, fingerprint, run_graph

SAMPLE = sample_sources()
LOAD = ["raw_csv_s3", "provinces", "departments", "cleaned_cases"]


@pytest.fixture(scope="module")
def registry_too_large(tmp_path_factory) -> Path:
    """400,000 cases: about 100 MB once loaded, more than the small disk has left."""
    return write_large_registry(tmp_path_factory.mktemp("large") / "Covid19Casos.csv", copies=40)


@pytest.fixture
def small_home(tmp_path, monkeypatch):
    """COVID_HOME on a 128 MB tmpfs, holding the embedded server's data directory (`.path / 'pgdata'`): room
    for the sample's tables and the WAL a checkpoint keeps (a segment of 16 MB ahead), not for the large file."""
    with small_disk(tmp_path / "home", 128) as disk:
        monkeypatch.setenv("COVID_HOME", str(disk.path))
        try:
            yield disk
        finally:
            stop_embedded(disk.path / "pgdata")


def stop_embedded(data_dir: Path) -> None:
    if (data_dir / "postmaster.pid").exists():
        start_server(data_dir).cleanup()


# The graph runs on the embedded server in $COVID_HOME (no database URL), the raw files outside it: the sample
# first, then a file 20 times its size.
GROWING = QualityResource(max_row_growth=1000)


def retries(result) -> int:
    return sum(e.event_type == DagsterEventType.STEP_UP_FOR_RETRY for e in result.all_events)


def unknown_files(url: str, data_dir: Path) -> list[str]:
    """Relation files in the database's folder that no catalog entry names (what a crash leaves behind)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")  # the empty files dropped tables keep until the next checkpoint go
        oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
        known = {str(n) for (n,) in conn.execute("SELECT pg_relation_filenode(oid) FROM pg_class") if n}
    folder = data_dir / "base" / str(oid)
    return sorted(
        name
        for name in os.listdir(folder)
        if name.split("_")[0].split(".")[0].isdigit() and name.split("_")[0].split(".")[0] not in known
    )


def test_a_full_database_disk_fails_the_load_once_naming_it_and_the_next_run_recovers(
    small_home, tmp_path, registry_too_large
):
    data_dir = small_home.path / "pgdata"
    assert run_graph("", tmp_path, quality=GROWING, selection=LOAD).success
    url = embedded_server_url(data_dir)
    before = fingerprint(url, "covid.cases")

    result = run_graph(
        "", tmp_path, cases=registry_too_large, quality=GROWING, selection=LOAD, raise_on_error=False
    )
    step, message = failure_of(result)
    assert step == "cleaned_cases" and retries(result) == 0
    assert message.startswith(
        f"The database's disk is full: the embedded PostgreSQL's data directory {data_dir} ("
    ), message
    assert "No space left on device" in message and "it is not retried" in message
    assert "move COVID_HOME to a larger one" in message and "covid.cases was left as it was" in message
    # the server did not crash: the previous tables answer, and nothing is left of the loading table
    assert fingerprint(url, "covid.cases") == before
    assert unknown_files(url, data_dir) == []
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('covid.cases__incoming')").fetchone() == (None,)
        assert conn.execute("SHOW wal_level").fetchone() == ("minimal",)

    small_home.resize(400)  # space is back: the same run, unchanged, now works
    again = run_graph(
        "", tmp_path, cases=registry_too_large, quality=GROWING, selection=LOAD, raise_on_error=False
    )
    assert again.success
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM covid.cases").fetchone() == (
            len(read_records(registry_too_large)),
        )


def test_a_server_that_cannot_start_on_a_full_disk_says_so_and_starts_once_space_is_back(
    small_home, tmp_path
):
    data_dir = small_home.path / "pgdata"
    assert run_graph("", tmp_path, quality=GROWING, selection=LOAD).success
    stop_embedded(data_dir)
    filler = small_home.fill()

    result = run_graph("", tmp_path, quality=GROWING, selection=["cleaned_cases"], raise_on_error=False)
    step, message = failure_of(result)
    assert step == "cleaned_cases" and retries(result) == 0
    assert message.startswith(f"The embedded PostgreSQL in {data_dir} did not start: "), message
    assert "No space left on device" in message and f"(its log: {data_dir / 'log'})" in message
    assert "AssertionError" not in message

    filler.unlink()
    assert run_graph("", tmp_path, quality=GROWING, selection=["cleaned_cases"]).success


def server_owned_folder(path: Path) -> Path:
    """A folder the server's own user may write (pgserver runs PostgreSQL as `pgserver` when started by root)."""
    path.mkdir(parents=True)
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("pgserver")
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def test_a_server_crashed_by_a_full_wal_disk_is_named_without_a_retry(tmp_path, registry_too_large):
    """Where every row goes through the WAL (a server with wal_level replica, as an external one runs), a WAL
    write on a full disk crashes the server: the lost connection is recognised from the server's log."""
    from dagster import Failure

    from covid_pipeline.assets.failures import failures_for_people
    from covid_pipeline.ingest.loader import load_cases
    from covid_pipeline.resources.database import migrate
    from covid_pipeline.resources.warehouse import DatabaseLocation

    with small_disk(tmp_path / "wal", 64) as disk:
        data_dir = disk.path / "pgdata"
        server = start_server(data_dir)  # not the warehouse's: its WAL stays at the default level
        try:
            url = server.get_uri()
            assert psycopg.connect(url).execute("SHOW wal_level").fetchone() == ("replica",)
            tables = server_owned_folder(
                tmp_path / "tables"
            )  # the tables on a large disk, the WAL on the small
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"CREATE TABLESPACE elsewhere LOCATION '{tables}'")
                conn.execute("ALTER DATABASE postgres SET default_tablespace = elsewhere")
            migrate(url)
            where = DatabaseLocation(f"the data directory {data_dir}", data_dir)
            with (
                pytest.raises(Failure) as failed,
                failures_for_people("covid.cases was left as it was.", where),
            ):
                load_cases(url, registry_too_large, source_sha256="large")
            message = failed.value.description
            assert message.startswith(f"The database's disk is full: the data directory {data_dir} ("), (
                message
            )
            assert "No space left on device" in message and "The server stopped" in message
            assert failed.value.allow_retries is False
        finally:
            disk.resize(400)  # space back: the server recovers (crash recovery), then stops
            server.cleanup()
