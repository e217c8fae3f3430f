"""swap_in (resources/warehouse.py) never returns without having swapped: its last attempt waits for the lock
whatever lock_timeout the role or the database sets, and raises if even that attempt fails."""

import threading
import time

import psycopg
import pytest
from psycopg import sql

from covid_pipeline.resources.warehouse import swap_in
from covid_pipeline_tests.helpers.warehouse import query

HOLD_SECONDS = 2.5  # longer than every bounded attempt together (50 + 100 + ... + 800 ms)


@pytest.fixture
def tables(database_url):
    """covid.t holding 'old', and covid.t__incoming holding 'new', ready to be swapped in."""
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE SCHEMA covid")
        conn.execute("CREATE TABLE covid.t AS SELECT 'old' AS content")
        conn.execute("CREATE TABLE covid.t__incoming AS SELECT 'new' AS content")
    return database_url


def set_for_database(url, setting: str, value: str):
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                sql.Identifier(name), sql.Identifier(setting), value
            )
        )


def held_by_a_reader(url, seconds: float) -> threading.Thread:
    """A reader that holds covid.t (an open transaction that read it) for `seconds`."""
    started = threading.Event()

    def read():
        with psycopg.connect(url) as reader:
            reader.execute("SELECT * FROM covid.t").fetchall()
            started.set()
            time.sleep(seconds)

    thread = threading.Thread(target=read)
    thread.start()
    started.wait(10)
    return thread


def test_the_last_attempt_waits_for_the_lock_despite_the_database_lock_timeout(tables):
    set_for_database(tables, "lock_timeout", "20ms")
    reader = held_by_a_reader(tables, HOLD_SECONDS)
    began = time.monotonic()
    with psycopg.connect(tables) as conn:
        assert conn.execute("SHOW lock_timeout").fetchone() == ("20ms",)
        swap_in(conn, "covid", "t__incoming", "t")
        waited = time.monotonic() - began
        assert conn.execute("SHOW lock_timeout").fetchone() == ("20ms",)  # the session's own, given back
    reader.join()
    assert waited >= HOLD_SECONDS - 0.5  # it waited for the reader instead of giving up
    assert query(tables, "SELECT content FROM covid.t") == [("new",)]
    assert query(tables, "SELECT to_regclass('covid.t__incoming')") == [(None,)]


def test_a_swap_that_cannot_finish_raises_and_changes_nothing(tables):
    set_for_database(tables, "statement_timeout", "300ms")
    reader = held_by_a_reader(tables, HOLD_SECONDS)
    with pytest.raises(psycopg.errors.QueryCanceled), psycopg.connect(tables) as conn:
        swap_in(conn, "covid", "t__incoming", "t")
    reader.join()
    assert query(tables, "SELECT content FROM covid.t") == [("old",)]
    assert query(tables, "SELECT content FROM covid.t__incoming") == [("new",)]
