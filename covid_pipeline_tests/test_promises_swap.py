"""Readers never see a half-loaded or missing table: during a whole run they see the old content or the new,
never an error; the reporting marts are replaced as one set, so a reader of all of them sees the previous load's
set or the new one, never a mix; and a swap that fails right after the old table is dropped leaves every
previous table.
"""

import threading

import psycopg
import pytest
from dagster import AssetSelection

from covid_pipeline.assets.reporting import MARTS, READS, key_of
from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.registry import real_rows, write_registry
from covid_pipeline_tests.helpers.warehouse import failure_of, fingerprint, query, run_graph

SAMPLE = sample_sources()
# What a reader of the warehouse (an analyst, Metabase) queries; reporting.latest_update reads covid.cases and
# covid.loads, both written by the load's one transaction.
RELATIONS = (
    "covid.cases",
    "covid.daily_aggregates",
    "covid.provinces",
    "covid.departments",
    "reporting.latest_update",
)


@pytest.fixture(scope="module")
def next_publication(tmp_path_factory) -> dict[str, str]:
    """Sources that differ from the bundled sample in every table: the registry, published three days later (every
    row says so, as in a real publication), grew by 1,500 cases notified meanwhile, and the departments are
    georef's older release."""
    rows = [r | {"ultima_actualizacion": "2020-11-26"} for r in real_rows()]
    last_id = max(int(r["id_evento_caso"]) for r in rows)
    extra = [
        r
        | {
            "id_evento_caso": str(last_id + n),
            "fecha_apertura": "2020-11-25",
            "ultima_actualizacion": "2020-11-26",
        }
        for n, r in enumerate(rows[:1500], start=1)
    ]
    cases = write_registry(tmp_path_factory.mktemp("next") / "Covid19Casos.zip", rows + extra)
    return {
        "cases": str(cases),
        "provinces": str(REAL_DATA / "georef_provincias_tp_covid_as_committed.csv"),
        "departments": str(REAL_DATA / "georef_departamentos_msastre73.csv"),
    }


def content_of(relation: str) -> str:
    """A query of (rows, md5 of every row's text) of `relation`, as helpers.warehouse.fingerprint reads it."""
    return f"SELECT count(*), md5(string_agg(t::text, '|' ORDER BY t::text)) FROM {relation} t"


class Reader:
    """Reads one relation (or runs one statement) in a loop from its own session (each statement sees the
    latest commit), recording every content it saw and every error."""

    def __init__(self, url: str, relation: str, statement: str | None = None):
        self.url, self.relation = url, relation
        self.statement = statement or content_of(relation)
        self.seen: set[tuple] = set()
        self.errors: list[Exception] = []
        self.reads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        statement = self.statement
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                try:
                    self.seen.add(conn.execute(statement).fetchone())
                    self.reads += 1
                except psycopg.Error as exc:
                    self.errors.append(exc)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)


def test_readers_see_the_old_content_or_the_new_and_never_an_error(sample_copy, next_publication, tmp_path):
    old = {r: fingerprint(sample_copy, r) for r in RELATIONS}
    readers = [Reader(sample_copy, r) for r in RELATIONS]
    for reader in readers:
        reader.__enter__()
    try:
        result = run_graph(sample_copy, tmp_path, **next_publication)
    finally:
        for reader in readers:
            reader.__exit__()
    assert result.success
    for reader in readers:
        new = fingerprint(sample_copy, reader.relation)
        assert not reader.errors, (reader.relation, reader.errors[:3])
        assert reader.reads > 1 and reader.seen <= {old[reader.relation], new}, reader.relation
        assert new != old[reader.relation], reader.relation  # the run really replaced what was read


# Every mart in one statement (one snapshot), in the order reporting_marts builds and swaps them (a reader that
# takes their locks in that order waits for the swaps instead of deadlocking with them).
EVERY_MART = "SELECT " + ", ".join(
    f"(SELECT row(count(*), md5(string_agg(t::text, '|' ORDER BY t::text)))::text FROM reporting.{mart} t)"
    for mart in MARTS
)
MARTS_STEP = AssetSelection.assets(*(key_of(name) for name in READS))
BEFORE_THE_MARTS = ["raw_csv_s3", "provinces", "departments", "department_crosswalk", "cleaned_cases"]
BEFORE_THE_MARTS += ["daily_aggregates"]

# Each mart's build takes a little longer (an event trigger sleeps after every table created in reporting), so
# that a reader queries the marts many times while they are being replaced.
SLOW_MARTS = """
CREATE FUNCTION public.slow_marts() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_event_trigger_ddl_commands() WHERE schema_name = 'reporting') THEN
        PERFORM pg_sleep(0.05);
    END IF;
END $$;
CREATE EVENT TRIGGER slow_marts ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS')
    EXECUTE FUNCTION public.slow_marts();
"""


def test_a_reader_of_every_mart_sees_the_previous_set_or_the_new_one_never_a_mix(
    sample_copy, next_publication, tmp_path
):
    # the tables the marts are built from hold the next publication; the marts still the sample's
    assert run_graph(sample_copy, tmp_path, **next_publication, selection=BEFORE_THE_MARTS).success
    [old] = query(sample_copy, EVERY_MART)
    with psycopg.connect(sample_copy, autocommit=True) as admin:  # the embedded server's user is a superuser
        admin.execute(SLOW_MARTS)
    with Reader(sample_copy, "every mart", EVERY_MART) as reader:
        assert run_graph(sample_copy, tmp_path, **next_publication, selection=MARTS_STEP).success
    [new] = query(sample_copy, EVERY_MART)
    assert not reader.errors, reader.errors[:3]
    assert reader.reads > 10 and reader.seen <= {old, new}
    # the new set differs from the old in most marts: a reader between two of their swaps would see a mix
    assert sum(a != b for a, b in zip(old, new, strict=True)) > len(MARTS) // 2


# Raised by the first DDL statement a swap runs once the old table is gone (the rename of the loading table):
# a swap that is not one transaction would leave readers with no table, or the previous one lost, here.
FAIL_AFTER_DROP = """
CREATE FUNCTION public.fail_after_drop() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    IF to_regclass('{table}') IS NULL AND to_regclass('{table}__incoming') IS NOT NULL THEN
        RAISE EXCEPTION 'injected fault: {table} is dropped, its replacement not yet renamed';
    END IF;
END $$;
CREATE EVENT TRIGGER fail_after_drop ON ddl_command_start EXECUTE FUNCTION public.fail_after_drop();
"""


@pytest.mark.parametrize(
    ("table", "step", "upstream"),
    [
        ("covid.cases", "cleaned_cases", []),
        ("covid.provinces", "provinces", []),
        ("covid.departments", "departments", []),
        ("covid.daily_aggregates", "daily_aggregates", ["cleaned_cases"]),
    ],
)
def test_a_swap_failing_right_after_the_drop_leaves_the_previous_table(
    sample_copy, next_publication, tmp_path, table, step, upstream
):
    selection = ["raw_csv_s3", *upstream, step]  # what leads to the swap, no more
    before = {r: fingerprint(sample_copy, r) for r in (table, "covid.loads", "reporting.latest_update")}
    with psycopg.connect(sample_copy, autocommit=True) as admin:  # the embedded server's user is a superuser
        admin.execute(FAIL_AFTER_DROP.format(table=table))
    result = run_graph(sample_copy, tmp_path, **next_publication, selection=selection, raise_on_error=False)
    failed_step, description = failure_of(result)
    assert failed_step == step
    assert "injected fault" in description
    assert fingerprint(sample_copy, table) == before[table]
    if table == "covid.cases":  # its provenance and what the views show stay with it
        assert fingerprint(sample_copy, "covid.loads") == before["covid.loads"]
        assert fingerprint(sample_copy, "reporting.latest_update") == before["reporting.latest_update"]
    assert query(sample_copy, f"SELECT to_regclass('{table}__incoming')") == [(None,)]
    # the fault gone, the next run replaces the table
    with psycopg.connect(sample_copy, autocommit=True) as admin:
        admin.execute("DROP EVENT TRIGGER fail_after_drop")
    assert run_graph(sample_copy, tmp_path, **next_publication, selection=selection).success
    assert fingerprint(sample_copy, table) != before[table]
