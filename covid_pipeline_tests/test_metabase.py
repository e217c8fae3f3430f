"""Metabase dashboards as code: provisioning against a fake Metabase on loopback (which really tests its
connection to the embedded PostgreSQL), and every card's SQL run against the warehouse as the read-only role
Metabase connects with."""

import base64
import json
import socket
import threading
import uuid
from copy import deepcopy

import psycopg
import pytest
import requests
import yaml
from psycopg import sql

from covid_pipeline.cli import main
from covid_pipeline.metabase.provision import Connection, MetabaseClient, load_definition, provision
from covid_pipeline.metabase.setup import serve_ready
from covid_pipeline_tests.helpers.metabase import FakeMetabase
from covid_pipeline_tests.helpers.warehouse import metabase_login

ADMIN, PASSWORD = "admin@example.org", "s3cret-admin"


@pytest.fixture(scope="module")
def definition() -> dict:
    return load_definition()


@pytest.fixture
def warehouse(warehouse_url) -> dict:
    """Where the fake Metabase's connection tests go: the embedded server, as a login member of metabase_reader
    (pgserver listens on a socket folder, which psycopg takes as host; it trusts local logins)."""
    with metabase_login(warehouse_url) as reader_url, psycopg.connect(reader_url) as conn:
        port = conn.execute("SHOW port").fetchone()[0]
        info = psycopg.conninfo.conninfo_to_dict(reader_url)
        yield {"host": info["host"], "port": port, "dbname": info["dbname"], "user": info["user"]}


@pytest.fixture
def metabase():
    with FakeMetabase(ADMIN, PASSWORD) as fake:
        yield fake


@pytest.fixture(autouse=True)
def passwords(monkeypatch):
    """Passwords reach the command through the environment (or a secret, or a prompt), never its arguments."""
    monkeypatch.setenv("METABASE_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("METABASE_DB_PASSWORD", "reader-pw")
    for name in (
        "METABASE_API_KEY",
        "METABASE_ADMIN_EMAIL",
        "METABASE_ADMIN_SECRET",
        "METABASE_API_KEY_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


def run(metabase: FakeMetabase, warehouse: dict, *extra: str) -> int:
    return main(
        ["metabase", "provision", "--url", metabase.url, "--user", ADMIN]
        + ["--db-host", warehouse["host"], "--db-port", warehouse["port"], "--db-name", warehouse["dbname"]]
        + ["--db-user", warehouse["user"], *extra]
    )


def write(tmp_path, definition: dict, name: str = "dashboard.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(definition), encoding="utf-8")
    return str(path)


def ours(metabase: FakeMetabase) -> dict:
    [database] = [d for d in metabase.databases.values() if not d.get("is_sample")]
    return database


def snapshot(metabase: FakeMetabase) -> dict:
    return {
        "databases": {i: (d["name"], d["details"].get("host")) for i, d in metabase.databases.items()},
        "collections": {i: c["name"] for i, c in metabase.collections.items()},
        "cards": {i: c["name"] for i, c in metabase.cards.items()},
        "dashboards": {i: d["name"] for i, d in metabase.dashboards.items()},
        "dashcards": {
            i: (d["card_id"], d["row"], d["col"], d["size_x"], d["size_y"])
            for i, d in metabase.dashcards.items()
        },
    }


def laid_out(definition: dict, card_id_by_name: dict) -> list[tuple]:
    name_of = {c["key"]: c["name"] for c in definition["cards"]}
    return sorted(
        (card_id_by_name[name_of[p["card"]]], p["row"], p["col"], p["size_x"], p["size_y"])
        for p in definition["dashboard"]["layout"]
    )


def test_provisioning_creates_everything_once_and_a_second_run_only_updates(
    metabase, warehouse, definition, capsys
):
    assert run(metabase, warehouse) == 0
    first = snapshot(metabase)
    first_calls = list(metabase.calls)
    first_tests = len(metabase.connection_tests)
    assert run(metabase, warehouse) == 0
    second_calls = metabase.calls[len(first_calls) :]

    # first run: one database (next to the sample), one collection, every card, one dashboard laid out
    database = ours(metabase)
    assert database["engine"] == "postgres" and database["name"] == definition["database"]["name"]
    assert database["details"] == {
        "host": warehouse["host"],
        "port": int(warehouse["port"]),
        "dbname": warehouse["dbname"],
        "user": warehouse["user"],
        "password": "reader-pw",
        "ssl": False,  # Metabase tried SSL first; the embedded server has none
        "schema-filters-type": "inclusion",
        "schema-filters-patterns": "reporting",
    }
    assert [t["ssl"] for t in metabase.connection_tests[:first_tests]] == [True, False]
    [collection] = [c for c in metabase.collections.values() if not c["personal_owner_id"]]
    assert collection["location"] == "/"
    assert sorted(c["name"] for c in metabase.cards.values()) == sorted(
        c["name"] for c in definition["cards"]
    )
    for card in metabase.cards.values():
        assert card["collection_id"] == collection["id"]
        assert card["dataset_query"]["database"] == database["id"]
        assert card["dataset_query"]["native"]["query"] == definition_sql(definition, card["name"])
    [dashboard] = metabase.dashboards.values()
    assert dashboard["collection_id"] == collection["id"]
    card_id = {c["name"]: c["id"] for c in metabase.cards.values()}
    assert sorted(first["dashcards"].values()) == laid_out(definition, card_id)
    posts = [path for method, path, _ in first_calls if method == "POST"]
    assert sorted(posts) == sorted(
        ["/api/database", "/api/collection", "/api/dashboard"] + ["/api/card"] * len(definition["cards"])
    )

    # second run: nothing created, every object updated in place, the same dashcards kept; the database's
    # details are unchanged, so Metabase does not test the connection again
    assert [call for call in second_calls if call[0] == "POST"] == []
    assert snapshot(metabase) == first
    assert len(metabase.connection_tests) == first_tests
    puts = sorted(path for method, path, _ in second_calls if method == "PUT")
    assert puts == sorted(
        [
            f"/api/database/{database['id']}",
            f"/api/collection/{collection['id']}",
            f"/api/dashboard/{dashboard['id']}",
            f"/api/dashboard/{dashboard['id']}",
        ]
        + [f"/api/card/{i}" for i in metabase.cards]
    )
    out = capsys.readouterr().out
    assert f"created  dashboard  {dashboard['name']}" in out
    assert f"updated  dashboard  {dashboard['name']}" in out


def definition_sql(definition: dict, name: str) -> str:
    [card] = [c for c in definition["cards"] if c["name"] == name]
    return card["sql"].strip()


def test_a_changed_definition_updates_cards_and_layout_in_place(metabase, warehouse, definition, tmp_path):
    assert run(metabase, warehouse) == 0
    before = snapshot(metabase)
    changed = deepcopy(definition)
    changed["cards"][0]["sql"] = "SELECT reference_date FROM reporting.latest_update"
    changed["dashboard"]["layout"][0]["size_y"] = 4
    assert run(metabase, warehouse, "--definition", write(tmp_path, changed)) == 0
    after = snapshot(metabase)
    assert after["cards"] == before["cards"]  # same ids, same names
    [card] = [c for c in metabase.cards.values() if c["name"] == changed["cards"][0]["name"]]
    assert card["dataset_query"]["native"]["query"] == "SELECT reference_date FROM reporting.latest_update"
    [(dashcard_id, place)] = [(i, d) for i, d in after["dashcards"].items() if d[0] == card["id"]]
    assert place[4] == 4 and before["dashcards"][dashcard_id][4] == 3


# ---- issue 12, defect 1: ssl flip ----


def test_a_rerun_keeps_the_ssl_metabase_found_so_a_server_that_forces_ssl_still_accepts_it(
    metabase, warehouse
):
    metabase.warehouse_ssl = True  # e.g. RDS: SSL works
    assert run(metabase, warehouse) == 0  # --db-ssl false: Metabase tries SSL first, and keeps it
    assert ours(metabase)["details"]["ssl"] is True
    metabase.warehouse_forces_ssl = True  # rds.force_ssl = 1: plaintext is refused
    tests = len(metabase.connection_tests)

    assert run(metabase, warehouse) == 0
    assert ours(metabase)["details"]["ssl"] is True
    assert metabase.connection_tests[tests:] == []  # nothing changed: no re-test, in plaintext or otherwise
    [put] = [body for method, path, body in metabase.calls if method == "PUT" and "/api/database/" in path]
    assert put == {"details": {"password": "reader-pw"}}  # only what may have changed

    # what did change is sent: a new port is re-tested, with the SSL Metabase stored
    assert run(metabase, warehouse, "--db-port", "5433") == 1
    assert metabase.connection_tests[-1]["ssl"] is True and metabase.connection_tests[-1]["port"] == 5433


def test_ssl_true_is_sent_and_a_warehouse_without_ssl_then_refuses(metabase, warehouse, monkeypatch, capsys):
    monkeypatch.setenv("METABASE_DB_SSL", "true")
    monkeypatch.setenv("METABASE_DB_SSL_MODE", "require")  # the embedded server's socket: nothing to verify
    assert run(metabase, warehouse) == 1
    assert "POST /api/database: HTTP 400" in capsys.readouterr().err
    assert [t["ssl"] for t in metabase.connection_tests] == [True]  # SSL only: no plaintext attempt
    metabase.warehouse_ssl = True
    assert run(metabase, warehouse) == 0
    assert ours(metabase)["details"]["ssl"] is True


# ---- issue 12, defect 2: collection hijack ----


def test_a_collection_of_the_same_name_elsewhere_is_left_alone(metabase, warehouse, definition, monkeypatch):
    name = definition["collection"]["name"]
    anas = metabase.add_user(2, "Ana")
    hers = metabase.add_collection(name, parent_id=anas)  # her sub-collection: personal_owner_id is null
    team = metabase.add_collection("Team")
    nested = metabase.add_collection(name, parent_id=team)
    assert metabase.collections[hers]["personal_owner_id"] is None

    assert run(metabase, warehouse) == 0
    [root] = [c for c in metabase.collections.values() if c["name"] == name and c["location"] == "/"]
    assert {c["collection_id"] for c in metabase.cards.values()} == {root["id"]}
    touched = {path for method, path, _ in metabase.calls if method != "GET"}
    assert not touched & {f"/api/collection/{hers}", f"/api/collection/{nested}"}

    # a collection given by id is used as it is, wherever it is
    given = metabase.add_collection("Dashboards", parent_id=team)
    monkeypatch.setenv("METABASE_COLLECTION_ID", str(given))
    before = dict(metabase.collections[given])
    assert run(metabase, warehouse) == 0
    assert metabase.collections[given] == before
    in_given = [c["name"] for c in metabase.cards.values() if c["collection_id"] == given]
    assert sorted(in_given) == sorted(c["name"] for c in definition["cards"])
    assert [d["collection_id"] for d in metabase.dashboards.values()] == [root["id"], given]


# ---- issue 12, defect 3: tabs ----


@pytest.mark.parametrize("version", ["v0.50", "head"])  # v0.50 refused the PUT, HEAD deleted the tabs
def test_tabs_added_by_hand_are_kept_and_the_yaml_can_place_cards_on_tabs(
    metabase, warehouse, definition, tmp_path, version
):
    metabase.version = version
    assert run(metabase, warehouse) == 0
    [dashboard_id] = metabase.dashboards
    overview = metabase.add_tab(dashboard_id, "Overview")
    notes = metabase.add_tab(dashboard_id, "Notes")
    for dashcard in metabase.dashcards.values():
        dashcard["dashboard_tab_id"] = overview
    assert run(metabase, warehouse) == 0
    tabs = {t["id"]: t["name"] for t in metabase.tabs.values()}
    assert tabs == {overview: "Overview", notes: "Notes"}
    assert {d["dashboard_tab_id"] for d in metabase.dashcards.values()} == {overview}
    assert len(metabase.dashcards) == len(definition["dashboard"]["layout"])

    tabbed = deepcopy(definition)
    provinces = ["by_province", "province_curves", "fatality_by_province"]
    tabbed["dashboard"]["tabs"] = [{"name": "Overview"}, {"name": "Provinces", "cards": provinces}]
    assert run(metabase, warehouse, "--definition", write(tmp_path, tabbed)) == 0
    ordered = sorted(metabase.tabs.values(), key=lambda t: t["position"])
    assert [t["name"] for t in ordered] == ["Overview", "Provinces", "Notes"]
    assert ordered[0]["id"] == overview and ordered[2]["id"] == notes  # the same tabs, not new ones
    key_of = {c["name"]: c["key"] for c in definition["cards"]}
    tab_of = {
        key_of[metabase.cards[d["card_id"]]["name"]]: d["dashboard_tab_id"]
        for d in metabase.dashcards.values()
    }
    assert {k for k, tab in tab_of.items() if tab == ordered[1]["id"]} == set(provinces)
    assert {k for k, tab in tab_of.items() if tab == overview} == set(tab_of) - set(provinces)


# ---- issue 12, defect 4: duplicates on re-run ----


def test_trashed_converted_and_dashboard_questions_are_restored_not_created_again(
    metabase, warehouse, definition, capsys
):
    assert run(metabase, warehouse) == 0
    before = snapshot(metabase)
    [dashboard_id] = metabase.dashboards
    by_key = {c["key"]: c["name"] for c in definition["cards"]}
    card = {c["name"]: c for c in metabase.cards.values()}
    card[by_key["per_year"]]["archived"] = True  # moved to the trash
    card[by_key["per_month"]]["type"] = "model"  # turned into a model
    card[by_key["by_age"]]["type"] = "metric"
    card[by_key["by_sex"]]["dashboard_id"] = dashboard_id  # moved into the dashboard (v0.53+)
    metabase.dashcards = {
        i: d for i, d in metabase.dashcards.items() if d["card_id"] != card[by_key["per_year"]]["id"]
    }
    metabase.dashboards[dashboard_id]["archived"] = True  # and the dashboard trashed, with its question
    card[by_key["by_sex"]]["archived"] = True
    capsys.readouterr()

    assert run(metabase, warehouse) == 0
    assert [path for method, path, _ in metabase.calls if method == "POST"].count("/api/card") == len(
        definition["cards"]
    )  # those of the first run only
    assert snapshot(metabase)["cards"] == before["cards"]
    assert snapshot(metabase)["dashboards"] == before["dashboards"]
    assert sorted(snapshot(metabase)["dashcards"].values()) == sorted(before["dashcards"].values())
    assert not metabase.dashboards[dashboard_id]["archived"]
    assert all(not c["archived"] and c["type"] == "question" for c in metabase.cards.values())
    assert card[by_key["by_sex"]]["dashboard_id"] == dashboard_id  # still the dashboard's own question
    out = capsys.readouterr().out
    for key in ("per_year", "per_month", "by_age"):
        assert f"restored card       {by_key[key]}" in out
    assert f"restored dashboard  {definition['dashboard']['name']}" in out


def test_a_question_saved_in_another_dashboard_is_not_taken(metabase, warehouse, definition):
    assert run(metabase, warehouse) == 0
    [dashboard_id] = metabase.dashboards
    [collection_id] = {d["collection_id"] for d in metabase.dashboards.values()}
    other = metabase.dashboards[dashboard_id] | {"id": 999, "name": "Someone's", "archived": False}
    metabase.dashboards[999] = other
    name = definition["cards"][0]["name"]
    [mine] = [c for c in metabase.cards.values() if c["name"] == name]
    metabase.cards[998] = mine | {"id": 998, "dashboard_id": 999, "collection_id": collection_id}
    mine["archived"] = True
    assert run(metabase, warehouse) == 0
    assert not mine["archived"] and metabase.cards[998]["dashboard_id"] == 999
    assert mine["id"] in {
        d["card_id"] for d in metabase.dashcards.values() if d["dashboard_id"] == dashboard_id
    }


# ---- issue 12, defect 5: timeouts and unexpected answers ----


def test_adding_the_database_may_take_longer_than_other_requests(metabase, warehouse, definition, capsys):
    metabase.connection_test_delay = 1.0  # a slow host: POST /api/database tests twice
    connection = Connection(
        warehouse["host"], int(warehouse["port"]), warehouse["dbname"], warehouse["user"], ""
    )
    client = MetabaseClient(metabase.url, timeout=0.5)
    client.login(ADMIN, PASSWORD)
    outcome = provision(client, definition, connection)
    assert ("created", "database", definition["database"]["name"]) in outcome.actions

    metabase.connection_test_delay = 2.0
    assert run(metabase, warehouse, "--db-port", "5433", "--db-timeout", "0.5") == 1
    err = capsys.readouterr().err
    assert "PUT /api/database/" in err and "no answer within 0.5 s" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("request_", "reply", "expected"),
    [
        (("POST", "/api/session"), (200, "<html>Sign in to the proxy</html>"), "expected {id: string}"),
        (("GET", "/api/database"), (200, [{"id": 1, "name": "Sample Database"}]), "expected {data: ["),
        (("GET", "/api/card"), (200, {"data": []}), "expected [{id: integer, name: string"),
        (("POST", "/api/dashboard"), (200, {"name": "no id"}), "expected {id: integer, name: string}"),
    ],
)
def test_an_unexpected_answer_is_a_clear_error(metabase, warehouse, capsys, request_, reply, expected):
    metabase.replies[request_] = reply
    assert run(metabase, warehouse) == 1
    err = capsys.readouterr().err
    assert f"{request_[0]} {request_[1]}: unexpected response" in err and expected in err


# ---- issue 14, item 8 ----


def test_a_card_removed_from_the_yaml_and_a_dashcard_added_by_hand_leave_the_dashboard(
    metabase, warehouse, definition, tmp_path
):
    assert run(metabase, warehouse) == 0
    [dashboard_id] = metabase.dashboards
    hand_made = dict(next(iter(metabase.cards.values())), id=500, name="Mine")
    metabase.cards[500] = hand_made
    metabase.add_dashcard(dashboard_id, 500, row=50)
    metabase.add_dashcard(dashboard_id, None, row=60)  # a text card
    fewer = deepcopy(definition)
    removed = fewer["cards"].pop()
    fewer["dashboard"]["layout"] = [p for p in fewer["dashboard"]["layout"] if p["card"] != removed["key"]]

    assert run(metabase, warehouse, "--definition", write(tmp_path, fewer)) == 0
    card_id = {c["name"]: c["id"] for c in metabase.cards.values()}
    assert sorted(snapshot(metabase)["dashcards"].values()) == laid_out(fewer, card_id)
    assert removed["name"] in card_id  # the question itself stays in the collection


def test_the_connection_and_definition_env_vars_take_effect(
    metabase, warehouse, definition, tmp_path, monkeypatch
):
    smaller = deepcopy(definition)
    smaller["cards"] = smaller["cards"][:2]
    smaller["cards"][0]["name"] = "Published on (from METABASE_DEFINITION)"
    keys = {c["key"] for c in smaller["cards"]}
    smaller["dashboard"]["layout"] = [p for p in smaller["dashboard"]["layout"] if p["card"] in keys]
    for name, value in {
        "METABASE_URL": metabase.url,
        "METABASE_ADMIN_EMAIL": ADMIN,
        "METABASE_DB_HOST": warehouse["host"],
        "METABASE_DB_PORT": warehouse["port"],
        "METABASE_DB_NAME": warehouse["dbname"],
        "METABASE_DB_USER": warehouse["user"],
        "METABASE_DEFINITION": write(tmp_path, smaller),
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["metabase", "provision"]) == 0
    details = ours(metabase)["details"]
    assert (details["port"], details["dbname"], details["user"]) == (
        int(warehouse["port"]),
        warehouse["dbname"],
        warehouse["user"],
    )
    assert (warehouse["dbname"], warehouse["user"]) != ("covid", "metabase_reader")  # not the defaults
    assert sorted(c["name"] for c in metabase.cards.values()) == sorted(c["name"] for c in smaller["cards"])

    # each reaches the connection Metabase tests: a wrong one is refused by the warehouse
    for name, wrong, complaint in (
        ("METABASE_DB_PORT", "5433", ".s.PGSQL.5433"),
        ("METABASE_DB_NAME", "no_such_database", 'database "no_such_database" does not exist'),
        ("METABASE_DB_USER", "no_such_role", 'role "no_such_role" does not exist'),
    ):
        with monkeypatch.context() as env:
            env.setenv(name, wrong)
            assert main(["metabase", "provision"]) == 1
        assert complaint in metabase.connection_tests[-1]["error"], name


def test_a_wrong_admin_password_is_reported(metabase, capsys, monkeypatch):
    monkeypatch.setenv("METABASE_ADMIN_PASSWORD", "wrong")
    argv = ["metabase", "provision", "--url", metabase.url, "--user", ADMIN]
    assert main([*argv, "--db-host", "replica.internal"]) == 1
    assert "POST /api/session: HTTP 401" in capsys.readouterr().err
    assert metabase.calls == []


def test_metabase_reader_cannot_log_in_and_reads_nothing_in_covid(sample_warehouse):
    with psycopg.connect(sample_warehouse) as conn:
        assert conn.execute(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'metabase_reader'"
        ).fetchone() == (False,)
        relations = conn.execute(
            "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'covid' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') ORDER BY 1"
        ).fetchall()
        assert {"cases", "daily_aggregates", "provinces", "departments", "loads"} <= {r for r, _ in relations}
        granted = conn.execute(
            "SELECT c.relname, p.privilege FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, "
            "unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) "
            "AS p(privilege) WHERE n.nspname = 'covid' AND c.relkind <> 'i' "
            "AND has_table_privilege('metabase_reader', c.oid, p.privilege)"
        ).fetchall()
        assert granted == []
        assert conn.execute(
            "SELECT has_schema_privilege('metabase_reader', 'covid', 'USAGE')"
        ).fetchone() == (False,)
    with pytest.raises(psycopg.OperationalError, match='role "metabase_reader" is not permitted to log in'):
        psycopg.connect(psycopg.conninfo.make_conninfo(sample_warehouse, user="metabase_reader")).close()
    # a login that is a member reads none of them either
    with metabase_login(sample_warehouse) as reader_url, psycopg.connect(reader_url, autocommit=True) as conn:
        for relation, _ in relations:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT 1 FROM covid.{} LIMIT 1").format(sql.Identifier(relation)))


# ---- the fake itself ----


def test_the_fake_refuses_what_metabase_refuses(metabase, warehouse):
    """The fake is only worth its passing tests if it rejects the shapes and states Metabase rejects."""
    http = requests.Session()
    assert http.get(metabase.url + "/api/database").status_code == 401
    http.headers["X-Metabase-Session"] = http.post(
        metabase.url + "/api/session", json={"username": ADMIN, "password": PASSWORD}
    ).json()["id"]
    native = {"type": "native", "native": {"query": "SELECT 1"}, "database": 1}
    refused = http.post(
        metabase.url + "/api/card", json={"name": "x", "display": "table", "dataset_query": native}
    )
    assert refused.status_code == 400 and "visualization_settings" in refused.json()["errors"]
    card = http.post(
        metabase.url + "/api/card",
        json={"name": "x", "display": "table", "dataset_query": native, "visualization_settings": {}},
    ).json()
    assert http.get(f"{metabase.url}/api/card/{card['id'] + 100}").status_code == 404
    assert http.put(f"{metabase.url}/api/card/{card['id'] + 100}", json={"name": "y"}).status_code == 404
    dashboard = http.post(metabase.url + "/api/dashboard", json={"name": "d"}).json()
    place = {"card_id": card["id"], "row": 0, "col": 0, "size_x": 4, "size_y": 4}
    dashboard_url = f"{metabase.url}/api/dashboard/{dashboard['id']}"
    assert (
        http.put(dashboard_url, json={"dashcards": [place | {"id": -1}, place | {"id": -1}]}).status_code
        == 400
    )
    # the endpoint of Metabase < 0.47 is gone
    assert http.post(f"{dashboard_url}/cards", json={"cardId": card["id"]}).status_code == 404
    # once a dashboard has tabs, every dashcard needs one (v0.50); HEAD deletes the tabs not sent
    a_tab = metabase.add_tab(dashboard["id"], "A tab")
    no_tab = http.put(dashboard_url, json={"dashcards": [place | {"id": -1}]})
    assert no_tab.status_code == 400 and "every card has a tab" in no_tab.text
    metabase.version = "head"
    assert http.put(dashboard_url, json={"dashcards": [place | {"id": -1}]}).status_code == 200
    assert metabase.tabs == {}
    metabase.version = "v0.50"
    metabase.add_tab(dashboard["id"], "A tab")
    assert a_tab not in metabase.tabs
    # no dashcards on an archived dashboard, nor archived cards on a dashboard
    assert http.put(dashboard_url, json={"archived": True}).status_code == 200
    assert http.put(dashboard_url, json={"archived": False, "dashcards": []}).status_code == 404
    assert http.put(f"{metabase.url}/api/card/{card['id']}", json={"archived": True}).status_code == 200
    [tab] = metabase.tabs
    with_tab = {"id": -1, "dashboard_tab_id": tab} | place
    archived_card = http.put(
        dashboard_url, json={"dashcards": [with_tab], "tabs": [{"id": tab, "name": "A tab"}]}
    )
    assert archived_card.status_code == 404 and "archived" in archived_card.text
    # a database Metabase cannot reach is not added
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    details = {"host": "127.0.0.1", "port": port, "dbname": "covid", "user": "x", "password": "y"}
    unreachable = http.post(
        metabase.url + "/api/database", json={"name": "n", "engine": "postgres", "details": details}
    )
    assert unreachable.status_code == 400 and str(port) in unreachable.json()["message"]
    assert [t.get("ssl") for t in metabase.connection_tests] == [True, None]  # SSL first, then as given


def test_the_fake_merges_details_lists_collections_and_the_trash_as_metabase_does(metabase, warehouse):
    http = requests.Session()
    http.headers["X-Metabase-Session"] = http.post(
        metabase.url + "/api/session", json={"username": ADMIN, "password": PASSWORD}
    ).json()["id"]
    details = {k: warehouse[k] for k in ("host", "dbname", "user")} | {"port": int(warehouse["port"])}
    created = http.post(
        metabase.url + "/api/database", json={"name": "w", "engine": "postgres", "details": details}
    )
    database_url = f"{metabase.url}/api/database/{created.json()['id']}"
    assert created.status_code == 200 and created.json()["details"] == details  # SSL failed: as given
    # a PUT merges: keys it does not send are kept; a change is tested with the merged details
    assert http.put(database_url, json={"details": {"dbname": "nope"}}).status_code == 400
    assert http.put(database_url, json={"details": {"schema-filters-type": "all"}}).status_code == 200
    assert http.get(database_url).json()["details"] == details | {"schema-filters-type": "all"}
    # collections: a location, personal ones (and below them personal_owner_id null), the trash apart
    anas = metabase.add_user(2, "Ana")
    below = http.post(metabase.url + "/api/collection", json={"name": "Below", "parent_id": anas}).json()
    assert below["location"] == f"/{anas}/" and below["personal_owner_id"] is None
    listed = {c["id"]: c for c in http.get(metabase.url + "/api/collection").json()}
    assert listed[below["id"]]["is_personal"] and listed[anas]["personal_owner_id"] == 2
    mine_only = http.get(metabase.url + "/api/collection", params={"exclude-other-user-collections": "true"})
    assert {c["id"] for c in mine_only.json()} == {"root", 1}
    http.put(f"{metabase.url}/api/collection/{below['id']}", json={"archived": True})
    assert below["id"] not in {c["id"] for c in http.get(metabase.url + "/api/collection").json()}
    trash = http.get(metabase.url + "/api/collection", params={"archived": "true"}).json()
    assert [c["id"] for c in trash] == [below["id"]]


# ---- the definition ----


def test_every_card_query_runs_as_the_metabase_role(sample_warehouse, definition):
    with metabase_login(sample_warehouse) as reader_url, psycopg.connect(reader_url) as conn:
        for card in definition["cards"]:
            cursor = conn.execute(card["sql"])
            columns = [c.name for c in cursor.description]
            rows = cursor.fetchall()
            assert rows, f"{card['key']} returned no row on the sample"
            settings = card.get("visualization_settings", {})
            used = settings.get("graph.dimensions", []) + settings.get("graph.metrics", [])
            used += [settings[k] for k in ("pie.dimension", "pie.metric") if k in settings]
            assert set(used) <= set(columns), f"{card['key']} charts columns its SQL does not return"


def test_the_layout_places_every_card_once_without_overlap(definition):
    layout = definition["dashboard"]["layout"]
    assert sorted(p["card"] for p in layout) == sorted(c["key"] for c in definition["cards"])
    tabs = definition["dashboard"].get("tabs") or [{}]
    tab_of = {key: number for number, tab in enumerate(tabs) for key in tab.get("cards") or []}
    cells = set()
    for place in layout:
        assert place["col"] + place["size_x"] <= 24
        for row in range(place["row"], place["row"] + place["size_y"]):
            for col in range(place["col"], place["col"] + place["size_x"]):
                cell = (tab_of.get(place["card"], 0), row, col)  # rows count from the top of each tab
                assert cell not in cells, f"{place['card']} overlaps another card"
                cells.add(cell)
    displays = {"scalar", "line", "bar", "row", "pie", "table", "map"}
    assert {c["display"] for c in definition["cards"]} <= displays


# ---- credentials: never on the command line; API keys; sessions closed ----


def public(metabase: FakeMetabase, method: str, path: str) -> int:
    return sum(1 for m, p, _ in metabase.public_calls if (m, p) == (method, path))


@pytest.mark.parametrize("flag", ["--password", "--db-password", "--api-key"])
def test_a_secret_on_the_command_line_is_refused_before_anything_is_sent(metabase, warehouse, capsys, flag):
    assert run(metabase, warehouse, flag, "s3cret") == 1
    err = capsys.readouterr().err
    assert f"{flag} is not accepted" in err and "visible to every user" in err
    assert metabase.calls == [] and metabase.public_calls == []


def test_provisioning_logs_out_of_the_session_it_opened_even_when_it_fails(metabase, warehouse):
    assert run(metabase, warehouse) == 0
    assert public(metabase, "POST", "/api/session") == public(metabase, "DELETE", "/api/session") == 1
    assert metabase.sessions == {}
    metabase.replies[("POST", "/api/dashboard")] = (500, "boom")
    [dashboard_id] = metabase.dashboards
    del metabase.dashboards[dashboard_id]
    assert run(metabase, warehouse) == 1
    assert public(metabase, "DELETE", "/api/session") == 2 and metabase.sessions == {}


def test_without_a_password_and_no_terminal_it_says_where_to_put_one(
    metabase, warehouse, monkeypatch, capsys
):
    monkeypatch.delenv("METABASE_ADMIN_PASSWORD")
    assert run(metabase, warehouse) == 1
    assert "set METABASE_ADMIN_PASSWORD, give --admin-secret" in capsys.readouterr().err
    monkeypatch.delenv("METABASE_DB_PASSWORD")
    monkeypatch.setenv("METABASE_ADMIN_PASSWORD", PASSWORD)
    assert run(metabase, warehouse) == 1
    assert "set METABASE_DB_PASSWORD or give --db-secret" in capsys.readouterr().err
    assert metabase.calls == []


API_KEY = "mb_" + "k" * 41


def test_an_api_key_from_the_environment_or_a_secret_replaces_the_login(
    metabase, warehouse, monkeypatch, moto_endpoint, capsys
):
    import boto3

    metabase.api_keys[API_KEY] = "Administrators"
    monkeypatch.delenv("METABASE_ADMIN_PASSWORD")
    monkeypatch.setenv("METABASE_API_KEY", API_KEY)
    assert (
        main(
            [
                "metabase",
                "provision",
                "--url",
                metabase.url,
                "--db-host",
                warehouse["host"],
                "--db-port",
                warehouse["port"],
                "--db-name",
                warehouse["dbname"],
                "--db-user",
                warehouse["user"],
            ]
        )
        == 0
    )
    assert public(metabase, "POST", "/api/session") == 0 and public(metabase, "DELETE", "/api/session") == 0
    assert metabase.dashboards
    # From Secrets Manager, as the key itself or as JSON
    monkeypatch.delenv("METABASE_API_KEY")
    secrets = boto3.client("secretsmanager")
    key_secret = f"covid/metabase/api-key-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=key_secret, SecretString=json.dumps({"api_key": API_KEY}))
    assert run(metabase, warehouse, "--api-key-secret", key_secret) == 0
    # A key of a group that may not manage databases, or one Metabase does not know
    other = "mb_" + "o" * 41
    metabase.api_keys[other] = "All Users"
    other_secret = f"covid/metabase/other-key-{uuid.uuid4().hex[:8]}"
    secrets.create_secret(Name=other_secret, SecretString=other)
    capsys.readouterr()
    assert run(metabase, warehouse, "--api-key-secret", other_secret, "--db-port", "5433") == 1
    assert "HTTP 403" in capsys.readouterr().err
    monkeypatch.setenv("METABASE_API_KEY", "mb_unknown_key_0000")
    assert run(metabase, warehouse) == 1
    assert "HTTP 401" in capsys.readouterr().err
    assert public(metabase, "POST", "/api/session") == 0


def admin_secret() -> str:
    """A Secrets Manager secret (moto's: one server for the session) of the shape the deployment generates."""
    import boto3

    name = f"covid/metabase/admin-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"username": ADMIN, "password": PASSWORD})
    )
    return name


def test_the_admin_login_can_come_from_the_deployments_secret(
    metabase, warehouse, monkeypatch, moto_endpoint
):
    monkeypatch.delenv("METABASE_ADMIN_PASSWORD")
    secret = admin_secret()
    argv = ["metabase", "provision", "--url", metabase.url, "--admin-secret", secret]
    argv += ["--db-host", warehouse["host"], "--db-port", warehouse["port"], "--db-name", warehouse["dbname"]]
    assert main([*argv, "--db-user", warehouse["user"]]) == 0
    assert metabase.sessions == {} and metabase.dashboards


# ---- the analytics connection verifies the warehouse ----


def tls_run(metabase, tls_server, *extra: str) -> int:
    argv = ["metabase", "provision", "--url", metabase.url, "--user", ADMIN, "--db-host", tls_server.host]
    argv += ["--db-port", str(tls_server.port), "--db-name", "postgres", "--db-user", tls_server.user]
    return main([*argv, "--db-ssl", "true", *extra])


def test_the_connection_verifies_the_warehouse_against_the_given_ca(
    metabase, tls_server, capsys, monkeypatch
):
    monkeypatch.setenv("METABASE_DB_PASSWORD", tls_server.password)
    assert tls_run(metabase, tls_server, "--db-ssl-root-cert", str(tls_server.wrong_ca)) == 1
    assert "certificate verify failed" in capsys.readouterr().err
    assert tls_run(metabase, tls_server) == 1  # verify-full without a CA is refused before anything is sent
    assert "--db-ssl-root-cert" in capsys.readouterr().err
    assert tls_run(metabase, tls_server, "--db-ssl-root-cert", str(tls_server.ca)) == 0
    details = ours(metabase)["details"]
    assert details["ssl"] is True and details["ssl-mode"] == "verify-full"
    assert details["ssl-root-cert-options"] == "uploaded"
    prefix = "data:application/x-x509-ca-cert;base64,"
    assert base64.b64decode(details["ssl-root-cert-value"].removeprefix(prefix)) == tls_server.ca.read_bytes()
    assert metabase.connection_tests[-1]["error"] is None
    # A re-run with a CA bundle that no longer vouches for the server is refused, and changes nothing.
    assert tls_run(metabase, tls_server, "--db-ssl-root-cert", str(tls_server.wrong_ca)) == 1
    assert "certificate verify failed" in metabase.connection_tests[-1]["error"]
    assert base64.b64decode(ours(metabase)["details"]["ssl-root-cert-value"].removeprefix(prefix)) == (
        tls_server.ca.read_bytes()
    )


# ---- first-run setup ----


def setup_command(metabase: FakeMetabase, *extra: str) -> int:
    return main(["metabase", "setup", "--url", metabase.url, "--wait", "10", *extra])


@pytest.fixture
def fresh_metabase():
    with FakeMetabase(set_up=False) as fake:
        yield fake


def test_setup_makes_the_deployments_admin_the_first_user_once_and_logs_out(
    fresh_metabase, monkeypatch, capsys
):
    monkeypatch.setenv("METABASE_ADMIN_EMAIL", ADMIN)
    assert fresh_metabase.users == {}
    assert setup_command(fresh_metabase) == 0
    assert fresh_metabase.users == {ADMIN: PASSWORD} and fresh_metabase.sessions == {}
    assert public(fresh_metabase, "DELETE", "/api/session") == 1
    assert f"metabase set up: {fresh_metabase.url}, admin {ADMIN}" in capsys.readouterr().out
    assert setup_command(fresh_metabase) == 0  # again: it checks its admin can log in, and changes nothing
    assert public(fresh_metabase, "POST", "/api/setup") == 1 and fresh_metabase.sessions == {}
    assert "metabase already set up" in capsys.readouterr().out


def test_setup_refuses_a_metabase_a_stranger_set_up_first(fresh_metabase, monkeypatch, capsys):
    stranger = requests.Session()
    token = stranger.get(fresh_metabase.url + "/api/session/properties").json()["setup-token"]
    body = {
        "token": token,
        "user": {"email": "me@evil.example", "password": "m1ne-now"},
        "prefs": {"site_name": "x"},
    }
    assert stranger.post(fresh_metabase.url + "/api/setup", json=body).status_code == 200
    monkeypatch.setenv("METABASE_ADMIN_EMAIL", ADMIN)
    assert setup_command(fresh_metabase) == 1
    err = capsys.readouterr().err
    assert "someone completed its setup before the deployment did" in err and ADMIN in err


def test_setup_waits_for_metabase_and_takes_the_admin_from_a_secret(
    fresh_metabase, monkeypatch, moto_endpoint
):
    monkeypatch.delenv("METABASE_ADMIN_PASSWORD")
    secret = admin_secret()
    fresh_metabase.initializing = True  # migrating its database
    threading.Timer(1.5, lambda: setattr(fresh_metabase, "initializing", False)).start()
    assert setup_command(fresh_metabase, "--admin-secret", secret) == 0
    assert fresh_metabase.users == {ADMIN: PASSWORD}


def test_ready_answers_only_while_metabase_is_up(metabase):
    server = serve_ready(MetabaseClient(metabase.url), 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    ready = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert requests.get(ready + "/ready", timeout=5).status_code == 200
        metabase.initializing = True
        assert requests.get(ready + "/ready", timeout=5).status_code == 503
        assert requests.get(ready + "/", timeout=5).status_code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_the_fake_is_as_strict_as_metabase_about_setup_sessions_keys_and_ssl(fresh_metabase, tls_server):
    http = requests.Session()
    url = fresh_metabase.url
    token = http.get(url + "/api/session/properties").json()["setup-token"]
    user = {"email": ADMIN, "password": PASSWORD}
    for wrong, field in (
        ({"token": "not-it", "user": user}, "token"),
        ({"token": token, "user": user | {"email": "admin"}}, "email"),
        ({"token": token, "user": user | {"password": "abcdef"}}, "password"),  # no digit
        ({"token": token, "user": user | {"password": "Password1"}}, "password"),  # a common one
    ):
        answer = http.post(url + "/api/setup", json=wrong | {"prefs": {"site_name": "s"}})
        assert answer.status_code == 400 and field in answer.json()["errors"], field
    assert (
        http.post(url + "/api/setup", json={"token": token, "user": user}).status_code == 400
    )  # no site name
    done = http.post(url + "/api/setup", json={"token": token, "user": user, "prefs": {"site_name": "s"}})
    assert done.status_code == 200
    again = http.post(url + "/api/setup", json={"token": token, "user": user, "prefs": {"site_name": "s"}})
    assert again.status_code == 403
    # Logging out: only with a session, once.
    assert http.delete(url + "/api/session").status_code == 404
    session = {"X-Metabase-Session": done.json()["id"]}
    assert http.delete(url + "/api/session", headers=session).status_code == 204
    assert http.delete(url + "/api/session", headers=session).status_code == 404
    assert http.get(url + "/api/database", headers=session).status_code == 401
    # API keys: "mb_" and at least 12 characters, known, of a group that may do it.
    fresh_metabase.api_keys |= {API_KEY: "Administrators", "mb_short": "Administrators"}
    assert http.get(url + "/api/database", headers={"x-api-key": API_KEY}).status_code == 200
    assert http.get(url + "/api/database", headers={"x-api-key": "mb_short"}).status_code == 401
    assert http.get(url + "/api/database", headers={"x-api-key": "x" + API_KEY[1:]}).status_code == 401
    # SSL: without ssl-mode the driver falls back to "require", which accepts any server; verify modes need a CA.
    admin = {"x-api-key": API_KEY}
    details = {
        "host": tls_server.host,
        "port": tls_server.port,
        "dbname": "postgres",
        "user": tls_server.user,
    }
    details |= {"password": tls_server.password, "ssl": True}
    created = http.post(
        url + "/api/database", headers=admin, json={"name": "r", "engine": "postgres", "details": details}
    )
    assert created.status_code == 200  # no certificate checked at all
    no_ca = details | {"ssl-mode": "verify-full"}
    refused = http.post(
        url + "/api/database", headers=admin, json={"name": "v", "engine": "postgres", "details": no_ca}
    )
    assert refused.status_code == 400 and "root certificate file" in refused.json()["message"]
    by_path = no_ca | {"ssl-root-cert-path": str(tls_server.wrong_ca)}
    wrong = http.post(
        url + "/api/database", headers=admin, json={"name": "w", "engine": "postgres", "details": by_path}
    )
    assert wrong.status_code == 400 and "certificate verify failed" in wrong.json()["message"]
    shown = http.get(f"{url}/api/database/{created.json()['id']}", headers=admin).json()["details"]
    assert shown["password"] == "**MetabasePass**"
