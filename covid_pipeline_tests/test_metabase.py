"""Metabase dashboards as code: provisioning against a fake Metabase on loopback, and every card's SQL
run against the warehouse as the read-only role Metabase connects with."""

import psycopg
import pytest
import requests
import yaml

from covid_pipeline.cli import main
from covid_pipeline.metabase.provision import load_definition
from covid_pipeline_tests.helpers.metabase import FakeMetabase
from covid_pipeline_tests.helpers.warehouse import metabase_login

ADMIN, PASSWORD = "admin@example.org", "s3cret-admin"


def provision(metabase: FakeMetabase, *extra: str) -> int:
    return main(
        ["metabase", "provision", "--url", metabase.url, "--user", ADMIN, "--password", PASSWORD]
        + ["--db-host", "replica.internal", "--db-password", "reader-pw", *extra]
    )


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


def test_provisioning_creates_everything_once_and_a_second_run_only_updates(capsys):
    definition = load_definition()
    with FakeMetabase(ADMIN, PASSWORD) as metabase:
        assert provision(metabase) == 0
        first = snapshot(metabase)
        first_calls = list(metabase.calls)
        assert provision(metabase) == 0
        second_calls = metabase.calls[len(first_calls) :]

        # first run: one database (next to the sample), one collection, every card, one dashboard laid out
        [database] = [d for d in metabase.databases.values() if not d.get("is_sample")]
        assert database["engine"] == "postgres" and database["name"] == definition["database"]["name"]
        assert database["details"] | {"password": "?"} == {
            "host": "replica.internal",
            "port": 5432,
            "dbname": "covid",
            "user": "metabase_reader",  # the default login
            "password": "?",
            "ssl": False,
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": "reporting",
        }
        assert database["details"]["password"] == "reader-pw"
        [collection] = [c for c in metabase.collections.values() if not c["personal_owner_id"]]
        assert sorted(c["name"] for c in metabase.cards.values()) == sorted(
            c["name"] for c in definition["cards"]
        )
        for card in metabase.cards.values():
            assert card["collection_id"] == collection["id"]
            assert card["dataset_query"]["database"] == database["id"]
            assert card["dataset_query"]["native"]["query"].startswith("SELECT")
        [dashboard] = metabase.dashboards.values()
        assert dashboard["collection_id"] == collection["id"]
        card_id = {c["name"]: c["id"] for c in metabase.cards.values()}
        name_of = {c["key"]: c["name"] for c in definition["cards"]}
        assert sorted(first["dashcards"].values()) == sorted(
            (card_id[name_of[p["card"]]], p["row"], p["col"], p["size_x"], p["size_y"])
            for p in definition["dashboard"]["layout"]
        )
        posts = [path for method, path, _ in first_calls if method == "POST"]
        assert sorted(posts) == sorted(
            ["/api/database", "/api/collection", "/api/dashboard"] + ["/api/card"] * len(definition["cards"])
        )

        # second run: nothing created, every object updated in place, the same dashcards kept
        assert [call for call in second_calls if call[0] == "POST"] == []
        assert snapshot(metabase) == first
        puts = sorted(path for method, path, _ in second_calls if method == "PUT")
        assert puts == sorted(
            [
                f"/api/database/{database['id']}",
                f"/api/collection/{collection['id']}",
                f"/api/dashboard/{dashboard['id']}",
            ]
            + [f"/api/card/{i}" for i in metabase.cards]
        )
    out = capsys.readouterr().out
    assert (
        f"created  dashboard  {dashboard['name']}" in out
        and f"updated  dashboard  {dashboard['name']}" in out
    )


def test_a_changed_definition_updates_cards_and_layout_in_place(tmp_path):
    definition = load_definition()
    with FakeMetabase(ADMIN, PASSWORD) as metabase:
        assert provision(metabase) == 0
        before = snapshot(metabase)
        definition["cards"][0]["sql"] = "SELECT reference_date FROM reporting.latest_update"
        definition["dashboard"]["layout"][0]["size_y"] = 4
        changed = tmp_path / "dashboard.yaml"
        changed.write_text(yaml.safe_dump(definition))
        assert provision(metabase, "--definition", str(changed)) == 0
        after = snapshot(metabase)
        assert after["cards"] == before["cards"]  # same ids, same names
        [card] = [c for c in metabase.cards.values() if c["name"] == definition["cards"][0]["name"]]
        assert (
            card["dataset_query"]["native"]["query"] == "SELECT reference_date FROM reporting.latest_update"
        )
        [(dashcard_id, place)] = [(i, d) for i, d in after["dashcards"].items() if d[0] == card["id"]]
        assert place[4] == 4 and before["dashcards"][dashcard_id][4] == 3


def test_env_vars_stand_in_for_flags_and_a_wrong_password_is_reported(monkeypatch, capsys):
    with FakeMetabase(ADMIN, PASSWORD) as metabase:
        for name, value in {
            "METABASE_URL": metabase.url,
            "METABASE_ADMIN_EMAIL": ADMIN,
            "METABASE_ADMIN_PASSWORD": "wrong",
            "METABASE_DB_HOST": "replica.internal",
            "METABASE_DB_PASSWORD": "reader-pw",
            "METABASE_DB_SSL": "true",
        }.items():
            monkeypatch.setenv(name, value)
        assert main(["metabase", "provision"]) == 1
        assert "POST /api/session: HTTP 401" in capsys.readouterr().err
        assert metabase.calls == []
        monkeypatch.setenv("METABASE_ADMIN_PASSWORD", PASSWORD)
        assert main(["metabase", "provision"]) == 0
        [database] = [d for d in metabase.databases.values() if not d.get("is_sample")]
        assert database["details"]["ssl"] is True and database["details"]["host"] == "replica.internal"


def test_the_fake_refuses_what_metabase_refuses():
    """The fake is only worth its passing tests if it rejects the shapes Metabase rejects."""
    with FakeMetabase(ADMIN, PASSWORD) as metabase:
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
        dashboard = http.post(metabase.url + "/api/dashboard", json={"name": "d"}).json()
        place = {"card_id": card["id"], "row": 0, "col": 0, "size_x": 4, "size_y": 4}
        duplicate_ids = http.put(
            f"{metabase.url}/api/dashboard/{dashboard['id']}",
            json={"dashcards": [place | {"id": -1}, place | {"id": -1}]},
        )
        assert duplicate_ids.status_code == 400
        # the endpoint of Metabase < 0.47 is gone
        old = http.post(f"{metabase.url}/api/dashboard/{dashboard['id']}/cards", json={"cardId": card["id"]})
        assert old.status_code == 404


@pytest.fixture(scope="module")
def definition() -> dict:
    return load_definition()


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
    cells = set()
    for place in layout:
        assert place["col"] + place["size_x"] <= 24
        for row in range(place["row"], place["row"] + place["size_y"]):
            for col in range(place["col"], place["col"] + place["size_x"]):
                assert (row, col) not in cells, f"{place['card']} overlaps another card"
                cells.add((row, col))
    displays = {"scalar", "line", "bar", "row", "pie", "table", "map"}
    assert {c["display"] for c in definition["cards"]} <= displays
