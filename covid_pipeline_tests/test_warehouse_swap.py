"""swap_in (resources/swap.py) never returns without having swapped: its last attempt waits for the lock
whatever lock_timeout the role or the database sets, and raises if even that attempt fails. The views that read
the swapped table are recreated on the new one, with their grants."""

import threading
import time
import uuid

import psycopg
import pytest
from psycopg import sql

from covid_pipeline.resources.swap import swap_in
from covid_pipeline_tests.helpers.registry import real_rows, write_registry
from covid_pipeline_tests.helpers.warehouse import metabase_login, query, run_graph

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


@pytest.fixture
def role(database_url):
    """A login role of the test's own (roles belong to the whole server), dropped with what it was given."""
    name = f"reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
    yield name
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_views_on_the_swapped_table_are_recreated_on_the_new_one_with_their_grants(tables, role):
    with psycopg.connect(tables, autocommit=True) as conn:
        conn.execute("CREATE VIEW covid.v AS SELECT content FROM covid.t")
        conn.execute(
            "CREATE VIEW covid.vv AS SELECT upper(content) AS shout FROM covid.v"
        )  # a view of the view
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA covid TO {}").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT SELECT ON covid.v, covid.vv TO {}").format(sql.Identifier(role)))
    with psycopg.connect(tables) as conn:
        swap_in(conn, "covid", "t__incoming", "t")
    assert query(tables, "SELECT content FROM covid.v") == [("new",)]
    with psycopg.connect(psycopg.conninfo.make_conninfo(tables, user=role)) as reader:
        assert reader.execute("SELECT shout FROM covid.vv").fetchall() == [("NEW",)]
        assert reader.execute("SELECT content FROM covid.v").fetchall() == [("new",)]
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege
        ):  # what it was not given, it still may not read
            reader.execute("SELECT content FROM covid.t")


def test_a_run_carries_views_on_the_cases_and_on_the_marts_over_with_their_grants(sample_copy, tmp_path):
    """Views an analyst added, granted to Metabase's group role: the next load replaces covid.cases and every
    mart under them, and the views still answer the Metabase login, with the new data."""
    with psycopg.connect(sample_copy, autocommit=True) as conn:
        conn.execute(
            "CREATE VIEW covid.confirmed_ids AS SELECT case_id FROM covid.cases "
            "WHERE classification_summary = 'Confirmado'"
        )
        conn.execute(
            "CREATE VIEW reporting.last_week AS SELECT date, confirmed FROM reporting.epidemic_curve "
            "WHERE date > (SELECT reference_date - 7 FROM reporting.latest_update)"
        )
        conn.execute("GRANT USAGE ON SCHEMA covid TO metabase_reader")
        conn.execute("GRANT SELECT ON covid.confirmed_ids, reporting.last_week TO metabase_reader")
    rows = real_rows()
    newest = max(int(r["id_evento_caso"]) for r in rows) + 1
    extra = next(r for r in rows if r["clasificacion_resumen"] == "Confirmado")
    published = extra["ultima_actualizacion"]
    cases = write_registry(
        tmp_path / "Covid19Casos.zip",
        rows + [extra | {"id_evento_caso": str(newest), "fecha_apertura": published}],
    )
    assert run_graph(sample_copy, tmp_path, cases=cases).success
    with metabase_login(sample_copy) as login, psycopg.connect(login) as reader:
        assert (newest,) in reader.execute("SELECT case_id FROM covid.confirmed_ids").fetchall()
        assert reader.execute(
            "SELECT confirmed FROM reporting.last_week WHERE date = %s", (published,)
        ).fetchall() == [(1,)]
