"""Metabase dashboards as code: make a Metabase instance match dashboard.yaml through its REST API.

Targets Metabase v0.50 and later. Everything is found by name (the database connection among all databases,
the collection among all collections, cards and the dashboard inside the collection) and updated in place,
so running it again creates nothing new. The dashboard's cards are replaced by the layout of the file
(PUT /api/dashboard/:id with `dashcards`: existing ids are kept, new ones get negative ids).
"""

import argparse
import os
import sys
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import requests
import yaml

DEFINITION = files("covid_pipeline.metabase") / "dashboard.yaml"


class MetabaseError(RuntimeError):
    pass


@dataclass(frozen=True)
class Connection:
    """How Metabase reaches the warehouse: the read replica, as a member of metabase_reader."""

    host: str
    port: int
    dbname: str
    user: str
    password: str
    ssl: bool = False

    def details(self) -> dict:
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "ssl": self.ssl,
            # Sync only what the role may read.
            "schema-filters-type": "inclusion",
            "schema-filters-patterns": "reporting",
        }


@dataclass
class Outcome:
    """What a run did, as (kind, name) per action."""

    created: list[tuple[str, str]] = field(default_factory=list)
    updated: list[tuple[str, str]] = field(default_factory=list)
    dashboard_id: int | None = None

    def record(self, kind: str, name: str, created: bool) -> None:
        (self.created if created else self.updated).append((kind, name))


class MetabaseClient:
    """The few endpoints used, with the session token Metabase hands out at login."""

    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def login(self, username: str, password: str) -> None:
        session = self.request("POST", "/api/session", {"username": username, "password": password})
        self.http.headers["X-Metabase-Session"] = session["id"]

    def request(self, method: str, path: str, body: dict | None = None, params: dict | None = None):
        response = self.http.request(method, self.url + path, json=body, params=params, timeout=self.timeout)
        if response.status_code >= 400:
            raise MetabaseError(f"{method} {path}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    def collection_items(self, collection_id: int, model: str) -> list[dict]:
        return self.request("GET", f"/api/collection/{collection_id}/items", params={"models": model})["data"]


def load_definition(path: str | Path | None = None) -> dict:
    text = Path(path).read_text(encoding="utf-8") if path else DEFINITION.read_text(encoding="utf-8")
    return yaml.safe_load(text)


def provision(client: MetabaseClient, definition: dict, connection: Connection) -> Outcome:
    """Create or update the database, collection, cards and dashboard of `definition`."""
    outcome = Outcome()
    database_id = _ensure_database(client, definition["database"]["name"], connection, outcome)
    collection_id = _ensure_collection(client, definition["collection"], outcome)
    existing_cards = {c["name"]: c["id"] for c in client.collection_items(collection_id, "card")}
    card_ids = {
        card["key"]: _ensure_card(client, card, database_id, collection_id, existing_cards, outcome)
        for card in definition["cards"]
    }
    outcome.dashboard_id = _ensure_dashboard(
        client, definition["dashboard"], collection_id, card_ids, outcome
    )
    return outcome


def _ensure_database(client, name: str, connection: Connection, outcome: Outcome) -> int:
    body = {"name": name, "engine": "postgres", "details": connection.details()}
    found = [db for db in client.request("GET", "/api/database")["data"] if db["name"] == name]
    if found:
        database_id = found[0]["id"]
        client.request("PUT", f"/api/database/{database_id}", body)
    else:
        database_id = client.request("POST", "/api/database", body | {"is_full_sync": True})["id"]
    outcome.record("database", name, created=not found)
    return database_id


def _ensure_collection(client, collection: dict, outcome: Outcome) -> int:
    found = [
        c
        for c in client.request("GET", "/api/collection")
        if c["name"] == collection["name"] and isinstance(c["id"], int) and not c.get("personal_owner_id")
    ]
    body = {"name": collection["name"], "description": collection["description"]}
    if found:
        collection_id = found[0]["id"]
        client.request("PUT", f"/api/collection/{collection_id}", body)
    else:
        collection_id = client.request("POST", "/api/collection", body)["id"]
    outcome.record("collection", collection["name"], created=not found)
    return collection_id


def _ensure_card(client, card: dict, database_id: int, collection_id: int, existing: dict, outcome) -> int:
    body = {
        "name": card["name"],
        "description": card["description"],
        "display": card["display"],
        "dataset_query": {
            "type": "native",
            "native": {"query": card["sql"].strip(), "template-tags": {}},
            "database": database_id,
        },
        "visualization_settings": card.get("visualization_settings", {}),
        "collection_id": collection_id,
    }
    card_id = existing.get(card["name"])
    if card_id is None:
        card_id = client.request("POST", "/api/card", body)["id"]
    else:
        client.request("PUT", f"/api/card/{card_id}", body)
    outcome.record("card", card["name"], created=card["name"] not in existing)
    return card_id


def _ensure_dashboard(client, dashboard: dict, collection_id: int, card_ids: dict, outcome: Outcome) -> int:
    found = [
        d["id"] for d in client.collection_items(collection_id, "dashboard") if d["name"] == dashboard["name"]
    ]
    body = {
        "name": dashboard["name"],
        "description": dashboard["description"],
        "collection_id": collection_id,
    }
    dashboard_id = found[0] if found else client.request("POST", "/api/dashboard", body)["id"]
    current = client.request("GET", f"/api/dashboard/{dashboard_id}")["dashcards"]
    client.request(
        "PUT",
        f"/api/dashboard/{dashboard_id}",
        body | {"dashcards": _dashcards(dashboard["layout"], card_ids, current)},
    )
    outcome.record("dashboard", dashboard["name"], created=not found)
    return dashboard_id


def _dashcards(layout: list[dict], card_ids: dict, current: list[dict]) -> list[dict]:
    """The layout as dashcards, reusing the ids of cards already on the dashboard (negative ids are new)."""
    reusable: dict[int, list[int]] = {}
    for dashcard in current:
        reusable.setdefault(dashcard["card_id"], []).append(dashcard["id"])
    dashcards = []
    for number, place in enumerate(layout, start=1):
        card_id = card_ids[place["card"]]
        ids = reusable.get(card_id) or [-number]
        dashcards.append(
            {
                "id": ids.pop(0),
                "card_id": card_id,
                "row": place["row"],
                "col": place["col"],
                "size_x": place["size_x"],
                "size_y": place["size_y"],
                "series": [],
                "parameter_mappings": [],
                "visualization_settings": {},
            }
        )
    return dashcards


# ---- command line: covid-pipeline metabase provision ----

OPTIONS = (
    # flag, env var, default, help
    ("--url", "METABASE_URL", None, "Metabase URL, e.g. https://metabase.example.org"),
    ("--user", "METABASE_ADMIN_EMAIL", None, "admin e-mail"),
    ("--password", "METABASE_ADMIN_PASSWORD", None, "admin password"),
    ("--db-host", "METABASE_DB_HOST", None, "warehouse host Metabase connects to (the read replica)"),
    ("--db-port", "METABASE_DB_PORT", "5432", "warehouse port"),
    ("--db-name", "METABASE_DB_NAME", "covid", "warehouse database name"),
    (
        "--db-user",
        "METABASE_DB_USER",
        "metabase_reader",
        "metabase_reader, or a login role that is a member of it",
    ),
    ("--db-password", "METABASE_DB_PASSWORD", None, "its password"),
    ("--db-ssl", "METABASE_DB_SSL", "false", "connect with SSL: true or false (true on RDS)"),
    ("--definition", "METABASE_DEFINITION", None, "dashboard YAML (default: the bundled dashboard.yaml)"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, env, default, help_text in OPTIONS:
        parser.add_argument(flag, default=os.environ.get(env, default), help=f"{help_text} [env {env}]")


def run(args: argparse.Namespace) -> int:
    missing = [
        flag for flag, env, _, _ in OPTIONS[:8] if getattr(args, flag[2:].replace("-", "_")) in (None, "")
    ]
    if missing:
        raise SystemExit(
            f"covid-pipeline metabase provision: missing {', '.join(missing)} (or their env vars)"
        )
    connection = Connection(
        host=args.db_host,
        port=int(args.db_port),
        dbname=args.db_name,
        user=args.db_user,
        password=args.db_password,
        ssl=str(args.db_ssl).lower() in ("1", "true", "yes"),
    )
    client = MetabaseClient(args.url)
    try:
        client.login(args.user, args.password)
        outcome = provision(client, load_definition(args.definition), connection)
    except (MetabaseError, requests.RequestException) as exc:
        print(f"covid-pipeline metabase provision: {exc}", file=sys.stderr)
        return 1
    for verb, items in (("created", outcome.created), ("updated", outcome.updated)):
        for kind, name in items:
            print(f"{verb:<8} {kind:<10} {name}")
    print(f"dashboard: {client.url}/dashboard/{outcome.dashboard_id}")
    return 0
