"""Metabase dashboards as code: make a Metabase instance match dashboard.yaml through its REST API.

Targets Metabase v0.50 and later. Running it again creates nothing new:
- the database connection is found by name; only the details that differ from the stored ones are sent
  (Metabase merges them in and re-tests the connection when they change);
- the collection is the root-level one of that name (`location` "/"), or the one whose id is given;
- cards and the dashboard are found by name in that collection, wherever they are now: in the trash
  (restored), turned into models or metrics (turned back into questions), or saved inside the dashboard
  ("dashboard questions", v0.53+);
- the dashboard's cards are replaced by the file's layout with one PUT /api/dashboard/:id (existing dashcard
  ids kept, new ones negative, others removed), together with its tabs: those of the file, and any tab
  someone added by hand, kept empty.
"""

import argparse
import base64
import os
import sys
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import requests
import yaml

from covid_pipeline.metabase import credentials

DEFINITION = files("covid_pipeline.metabase") / "dashboard.yaml"
TIMEOUT = 30.0
# POST /api/database tests the connection twice (SSL, then plaintext) before answering, PUT once: against a
# slow or distant host that takes longer than any other request.
DATABASE_TIMEOUT = 180.0


class MetabaseError(RuntimeError):
    pass


SSL_MODES = ("require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class Connection:
    """How Metabase reaches the warehouse: the read replica, as a member of metabase_reader.

    With `ssl`, Metabase's postgres driver uses `ssl-mode` as the JDBC sslmode, "require" (encrypted, server not
    verified) when it is missing, and reads the root certificate only in the verify modes, from
    `ssl-root-cert-value` (an uploaded PEM as a data URI, as Metabase's own form sends it): `ssl-params` in
    src/metabase/driver/postgres.clj, `db-details-prop->secret-map` in src/metabase/models/secret.clj."""

    host: str
    port: int
    dbname: str
    user: str
    password: str
    ssl: bool = False
    ssl_mode: str = "verify-full"
    ssl_root_cert: str | None = None  # PEM text of the CA bundle (the RDS one on AWS)

    def __post_init__(self):
        if self.ssl and self.ssl_mode not in SSL_MODES:
            raise MetabaseError(f"SSL mode {self.ssl_mode!r}: one of {', '.join(SSL_MODES)}")
        if self.ssl and self.ssl_mode.startswith("verify") and not self.ssl_root_cert:
            raise MetabaseError(
                f"--db-ssl-mode {self.ssl_mode} checks the server against a CA: give the CA bundle with "
                "--db-ssl-root-cert (the RDS one: https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem)"
            )

    def details(self) -> dict:
        details = {
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
        if self.ssl:
            details["ssl-mode"] = self.ssl_mode
        if self.ssl and self.ssl_mode.startswith("verify"):
            encoded = base64.b64encode(self.ssl_root_cert.encode("ascii")).decode("ascii")
            details["ssl-root-cert-options"] = "uploaded"
            details["ssl-root-cert-value"] = f"data:application/x-x509-ca-cert;base64,{encoded}"
        return details


@dataclass
class Outcome:
    """What a run did: (verb, kind, name) per object, verb one of created, restored, updated, used."""

    actions: list[tuple[str, str, str]] = field(default_factory=list)
    dashboard_id: int | None = None

    def record(self, verb: str, kind: str, name: str) -> None:
        self.actions.append((verb, kind, name))


# ---- responses: what each request must answer, so that another shape is a clear error, not a traceback ----


def _conforms(value, shape) -> bool:
    """`shape`: a type (or tuple of types), a dict of key -> shape ("key?" optional), or [item shape]."""
    if isinstance(shape, dict):
        return isinstance(value, dict) and all(
            (key.endswith("?") and value.get(key[:-1]) is None)
            or (key.rstrip("?") in value and _conforms(value[key.rstrip("?")], s))
            for key, s in shape.items()
        )
    if isinstance(shape, list):
        return isinstance(value, list) and all(_conforms(item, shape[0]) for item in value)
    return isinstance(value, shape) and not (isinstance(value, bool) and shape is int)


def _describe(shape) -> str:
    if isinstance(shape, dict):
        return "{" + ", ".join(f"{key}: {_describe(s)}" for key, s in shape.items()) + "}"
    if isinstance(shape, list):
        return f"[{_describe(shape[0])}, ...]"
    types = shape if isinstance(shape, tuple) else (shape,)
    return " or ".join(
        {dict: "object", list: "list", str: "string", int: "integer"}.get(t, t.__name__) for t in types
    )


ID = {"id": int, "name": str}
CARD = ID | {"collection_id?": int, "archived?": bool, "type?": str, "dashboard_id?": int}
DASHBOARD = ID | {"collection_id?": int, "archived?": bool}
COLLECTION = {"id": (int, str), "name": str, "location?": str, "archived?": bool}
LAYOUT = {"dashcards": [{"id": int, "card_id?": int}], "tabs?": [ID | {"position?": int}]}


class MetabaseClient:
    """The few endpoints used, authenticated by an API key (header x-api-key, v0.49+) or by the session token
    Metabase hands out at login, which `logout` ends (use the client as a context manager)."""

    def __init__(self, url: str, timeout: float = TIMEOUT, database_timeout: float = DATABASE_TIMEOUT):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.database_timeout = database_timeout
        self.http = requests.Session()
        self.session_opened = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.logout()

    def use_api_key(self, key: str) -> None:
        self.http.headers["x-api-key"] = key

    def login(self, username: str, password: str) -> None:
        session = self.request(
            "POST", "/api/session", {"username": username, "password": password}, {"id": str}
        )
        self.use_session(session["id"])

    def use_session(self, session_id: str) -> None:
        self.http.headers["X-Metabase-Session"] = session_id
        self.session_opened = True

    def logout(self) -> None:
        """End the session this client opened (DELETE /api/session: src/metabase/session/api.clj)."""
        if self.session_opened:
            self.session_opened = False
            try:
                self.request("DELETE", "/api/session")
            except (MetabaseError, requests.RequestException) as exc:
                print(f"covid-pipeline metabase: could not log out: {exc}", file=sys.stderr)
            self.http.headers.pop("X-Metabase-Session", None)

    def request(self, method, path, body=None, shape=None, params=None, timeout=None):
        """The JSON answer, checked against `shape` (see _conforms); None when `shape` is None."""
        where = f"{method} {path}"
        timeout = timeout or self.timeout
        try:
            response = self.http.request(method, self.url + path, json=body, params=params, timeout=timeout)
        except requests.Timeout:
            raise MetabaseError(
                f"{where}: no answer within {timeout:g} s (wait longer with --timeout, or --db-timeout for /api/database)"
            ) from None
        if response.status_code >= 400:
            raise MetabaseError(f"{where}: HTTP {response.status_code}: {response.text[:500]}")
        if shape is None:
            return None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if payload is None or not _conforms(payload, shape):
            raise MetabaseError(
                f"{where}: unexpected response (is {self.url} Metabase v0.50 or later?): expected "
                f"{_describe(shape)}, got: {response.text[:300]!r}"
            )
        return payload

    def everything(self, path: str, shape: dict) -> list[dict]:
        """Every card or dashboard, archived ones included (`f=all` leaves them out)."""
        return [
            item for f in ("all", "archived") for item in self.request("GET", path, None, [shape], {"f": f})
        ]


# ---- the definition ----


def load_definition(path: str | Path | None = None) -> dict:
    source = Path(path) if path else DEFINITION
    try:
        definition = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise MetabaseError(f"{source}: {exc}") from None
    _check_definition(definition, str(source))
    return definition


def _check_definition(definition, source: str) -> None:
    """The references between parts of the file: every placed or tabbed card is defined, tabs are unique."""

    def fail(where: str, message: str):
        raise MetabaseError(f"{source}: {where}: {message}")

    if not isinstance(definition, dict) or not {"database", "collection", "cards", "dashboard"} <= set(
        definition
    ):
        fail("top level", "needs database, collection, cards and dashboard")
    keys = [card.get("key") for card in definition["cards"]]
    if len(set(keys)) != len(keys):
        fail("cards", "two cards have the same key")
    dashboard = definition["dashboard"]
    for number, place in enumerate(dashboard.get("layout") or []):
        if place.get("card") not in keys:
            fail(f"dashboard.layout[{number}]", f"unknown card {place.get('card')!r}")
    names = [tab.get("name") for tab in dashboard.get("tabs") or []]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n.strip() for n in names):
        fail("dashboard.tabs", "every tab needs a name of its own")
    for number, tab in enumerate(dashboard.get("tabs") or []):
        for key in tab.get("cards") or []:
            if key not in keys:
                fail(f"dashboard.tabs[{number}].cards", f"unknown card {key!r}")


# ---- provisioning ----


def provision(
    client: MetabaseClient, definition: dict, connection: Connection, collection_id: int | None = None
) -> Outcome:
    """Create or update the database, collection, cards and dashboard of `definition`.

    `collection_id` (or `collection.id` in the definition): use that collection, as it is."""
    outcome = Outcome()
    database_id = _ensure_database(client, definition["database"]["name"], connection, outcome)
    collection_id = _ensure_collection(
        client, definition["collection"], collection_id or definition["collection"].get("id"), outcome
    )
    dashboard = definition["dashboard"]
    dashboard_id = _ensure_dashboard(client, dashboard, collection_id, outcome)
    existing = _existing_cards(client, collection_id, dashboard_id)
    card_ids = {
        card["key"]: _ensure_card(
            client, card, database_id, collection_id, existing.get(card["name"]), outcome
        )
        for card in definition["cards"]
    }
    _lay_out(client, dashboard_id, dashboard, card_ids)
    outcome.dashboard_id = dashboard_id
    return outcome


def _ensure_database(client, name: str, connection: Connection, outcome: Outcome) -> int:
    listed = client.request("GET", "/api/database", shape={"data": [ID]})["data"]
    found = [db["id"] for db in listed if db["name"] == name]
    if not found:
        body = {"name": name, "engine": "postgres", "details": connection.details(), "is_full_sync": True}
        created = client.request("POST", "/api/database", body, ID, timeout=client.database_timeout)
        outcome.record("created", "database", name)
        return created["id"]
    stored = client.request("GET", f"/api/database/{found[0]}", shape={"engine": str, "details": dict})
    if stored["engine"] != "postgres":
        raise MetabaseError(
            f"database {name!r} (id {found[0]}) is a {stored['engine']} connection, not postgres"
        )
    body = {"details": _changed_details(stored["details"], connection.details())}
    client.request("PUT", f"/api/database/{found[0]}", body, ID, timeout=client.database_timeout)
    outcome.record("updated", "database", name)
    return found[0]


# Metabase masks these when it answers (the driver's :password and :secret connection properties).
SENSITIVE_DETAILS = {"password", "ssl-root-cert-value"}


def _changed_details(stored: dict, wanted: dict) -> dict:
    """The details to send: Metabase merges them into the stored ones and re-tests when the result differs."""
    changed = {key: value for key, value in wanted.items() if stored.get(key) != value}
    # With ssl false Metabase tried SSL first and stored ssl true when that worked. Sending false would make it
    # re-test in plaintext, which a server that forces SSL (RDS) refuses: keep what it found.
    if wanted["ssl"] is False and stored.get("ssl") is True:
        changed.pop("ssl", None)
    # Shown masked, so they cannot be compared: an unchanged secret merges into no change (and no test).
    for secret in SENSITIVE_DETAILS & set(wanted):
        changed[secret] = wanted[secret]
    return changed


def _ensure_collection(client, collection: dict, given: int | None, outcome: Outcome) -> int:
    if given is not None:
        found = client.request("GET", f"/api/collection/{int(given)}", shape=COLLECTION)
        if found.get("archived"):
            raise MetabaseError(
                f"collection {given} ({found['name']}) is in the trash: restore it or give another"
            )
        outcome.record("used", "collection", found["name"])
        return found["id"]
    # Only a root-level collection: a name can repeat at any depth, e.g. in someone's personal collection.
    found = [
        c["id"]
        for c in client.request("GET", "/api/collection", shape=[COLLECTION])
        if c["name"] == collection["name"]
        and isinstance(c["id"], int)
        and c.get("location") == "/"
        and not c.get("personal_owner_id")
        and not c.get("archived")
    ]
    body = {"name": collection["name"], "description": collection["description"]}
    if found:
        client.request("PUT", f"/api/collection/{min(found)}", body, ID)
        outcome.record("updated", "collection", collection["name"])
        return min(found)
    outcome.record("created", "collection", collection["name"])
    return client.request("POST", "/api/collection", body, ID)["id"]


def _preferred(items: list[dict]) -> dict | None:
    """Of several objects of one name: one in use before one in the trash, a question before a model, the oldest."""
    ranked = sorted(
        items, key=lambda i: (bool(i.get("archived")), i.get("type", "question") != "question", i["id"])
    )
    return ranked[0] if ranked else None


def _ensure_dashboard(client, dashboard: dict, collection_id: int, outcome: Outcome) -> int:
    found = _preferred(
        [
            d
            for d in client.everything("/api/dashboard", DASHBOARD)
            if d["name"] == dashboard["name"] and d.get("collection_id") == collection_id
        ]
    )
    body = {
        "name": dashboard["name"],
        "description": dashboard["description"],
        "collection_id": collection_id,
    }
    if found is None:
        outcome.record("created", "dashboard", dashboard["name"])
        return client.request("POST", "/api/dashboard", body, ID)["id"]
    # Restored on its own: Metabase refuses dashcards on a dashboard that was archived when the request came.
    restore = {"archived": False} if found.get("archived") else {}
    client.request("PUT", f"/api/dashboard/{found['id']}", body | restore, ID)
    outcome.record("restored" if found.get("archived") else "updated", "dashboard", dashboard["name"])
    return found["id"]


def _existing_cards(client, collection_id: int, dashboard_id: int) -> dict[str, dict]:
    """Cards of the collection by name, trashed ones and other types included, and the dashboard's own
    questions; not the questions saved inside another dashboard (Metabase will not show them on this one)."""
    by_name: dict[str, list[dict]] = {}
    for card in client.everything("/api/card", CARD):
        if card.get("collection_id") == collection_id and card.get("dashboard_id") in (None, dashboard_id):
            by_name.setdefault(card["name"], []).append(card)
    return {name: _preferred(cards) for name, cards in by_name.items()}


def _ensure_card(
    client, card: dict, database_id: int, collection_id: int, found: dict | None, outcome
) -> int:
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
    if found is None:
        outcome.record("created", "card", card["name"])
        return client.request("POST", "/api/card", body, ID)["id"]
    restore = {}
    if found.get("archived"):
        restore["archived"] = False
    if found.get("type", "question") != "question":
        restore["type"] = "question"
    client.request("PUT", f"/api/card/{found['id']}", body | restore, ID)
    outcome.record("restored" if restore else "updated", "card", card["name"])
    return found["id"]


def _lay_out(client, dashboard_id: int, dashboard: dict, card_ids: dict) -> None:
    current = client.request("GET", f"/api/dashboard/{dashboard_id}", shape=LAYOUT)
    tabs, tab_of = _tabs(dashboard.get("tabs") or [], current.get("tabs") or [])
    dashcards = _dashcards(dashboard["layout"], card_ids, current["dashcards"])
    if tabs:  # once a dashboard has tabs, Metabase wants every dashcard on one
        for dashcard, place in zip(dashcards, dashboard["layout"], strict=True):
            dashcard["dashboard_tab_id"] = tab_of.get(place["card"], tabs[0]["id"])
    client.request("PUT", f"/api/dashboard/{dashboard_id}", {"dashcards": dashcards, "tabs": tabs}, ID)


def _tabs(wanted: list[dict], current: list[dict]) -> tuple[list[dict], dict[str, int]]:
    """The dashboard's tabs: the file's, in its order (existing ones by name, new ones with negative ids), then
    any other tab it has, kept; and the tab id of each card the file assigns to a tab."""
    existing = {tab["name"]: tab["id"] for tab in sorted(current, key=lambda t: t.get("position") or 0)}
    tabs = [
        {"id": existing.get(tab["name"], -number), "name": tab["name"]}
        for number, tab in enumerate(wanted, 1)
    ]
    named = {tab["name"] for tab in wanted}
    tabs += [{"id": tab_id, "name": name} for name, tab_id in existing.items() if name not in named]
    tab_of = {
        key: tab["id"] for tab, spec in zip(tabs, wanted, strict=False) for key in spec.get("cards") or []
    }
    return tabs, tab_of


def _dashcards(layout: list[dict], card_ids: dict, current: list[dict]) -> list[dict]:
    """The layout as dashcards, reusing the ids of cards already on the dashboard (negative ids are new)."""
    reusable: dict[int, list[int]] = {}
    for dashcard in current:
        reusable.setdefault(dashcard.get("card_id"), []).append(dashcard["id"])
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
    # flag, env var, default, required, help
    ("--url", "METABASE_URL", None, True, "Metabase URL, e.g. https://metabase.example.org"),
    (
        "--user",
        "METABASE_ADMIN_EMAIL",
        None,
        False,
        "admin e-mail (password: METABASE_ADMIN_PASSWORD or a prompt)",
    ),
    (
        "--admin-secret",
        "METABASE_ADMIN_SECRET",
        None,
        False,
        "Secrets Manager secret with the admin's username and password (the deployment's <env>/metabase/admin)",
    ),
    (
        "--api-key-secret",
        "METABASE_API_KEY_SECRET",
        None,
        False,
        "Secrets Manager secret holding a Metabase API key of the Administrators group (or set METABASE_API_KEY)",
    ),
    ("--db-host", "METABASE_DB_HOST", None, True, "warehouse host Metabase connects to (the read replica)"),
    ("--db-port", "METABASE_DB_PORT", "5432", True, "warehouse port"),
    ("--db-name", "METABASE_DB_NAME", "covid", True, "warehouse database name"),
    (
        "--db-user",
        "METABASE_DB_USER",
        "metabase_reader",
        True,
        "metabase_reader, or a login role member of it",
    ),
    (
        "--db-secret",
        "METABASE_DB_SECRET",
        None,
        False,
        "Secrets Manager secret with its password (the deployment's <env>/database/metabase-reader), "
        "or set METABASE_DB_PASSWORD",
    ),
    (
        "--db-ssl",
        "METABASE_DB_SSL",
        "false",
        False,
        "true: SSL only (the AWS deployment: RDS forces it); false: Metabase tries SSL, then plaintext",
    ),
    (
        "--db-ssl-mode",
        "METABASE_DB_SSL_MODE",
        "verify-full",
        False,
        "with --db-ssl true: verify-full (the server's certificate and name checked), verify-ca, or require "
        "(encrypted, any server)",
    ),
    (
        "--db-ssl-root-cert",
        "METABASE_DB_SSL_ROOT_CERT",
        None,
        False,
        "PEM file of the CA bundle the server is checked against (for RDS: its global-bundle.pem)",
    ),
    ("--collection-id", "METABASE_COLLECTION_ID", None, False, "put everything in this collection (its id)"),
    (
        "--definition",
        "METABASE_DEFINITION",
        None,
        False,
        "dashboard YAML (default: the bundled dashboard.yaml)",
    ),
    ("--timeout", "METABASE_TIMEOUT", str(TIMEOUT), False, "seconds to wait for an answer"),
    (
        "--db-timeout",
        "METABASE_DB_TIMEOUT",
        str(DATABASE_TIMEOUT),
        False,
        "seconds to wait when adding or updating the database (Metabase tests the connection first)",
    ),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    for flag, env, default, _, help_text in OPTIONS:
        parser.add_argument(flag, default=os.environ.get(env, default), help=f"{help_text} [env {env}]")
    for flag in credentials.REFUSED_FLAGS:  # accepted only to be refused with a reason
        parser.add_argument(flag, dest=f"refused_{flag[2:].replace('-', '_')}", help=argparse.SUPPRESS)


def refused_flags(args: argparse.Namespace) -> None:
    given = [
        flag for flag in credentials.REFUSED_FLAGS if getattr(args, f"refused_{flag[2:].replace('-', '_')}")
    ]
    credentials.refuse_secret_flags(given)


def authenticate(client: MetabaseClient, args: argparse.Namespace) -> None:
    """An API key when one is configured (nothing to log out of), else the admin's login."""
    key = credentials.api_key(args.api_key_secret)
    if key:
        client.use_api_key(key)
    else:
        client.login(*credentials.login(args.user, args.admin_secret, "Metabase password for {username}: "))


def _connection(args: argparse.Namespace, port: int) -> Connection:
    password = os.environ.get("METABASE_DB_PASSWORD", "")
    if args.db_secret:
        password = credentials.secret_fields(args.db_secret).get("password", "")
    if not password:
        raise credentials.CredentialsError(
            f"no password for {args.db_user}: set METABASE_DB_PASSWORD or give --db-secret"
        )
    ssl = str(args.db_ssl).lower() in ("1", "true", "yes")
    root_cert = None
    if ssl and args.db_ssl_root_cert:
        try:
            root_cert = Path(args.db_ssl_root_cert).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            raise MetabaseError(f"--db-ssl-root-cert {args.db_ssl_root_cert}: {exc}") from None
    return Connection(
        args.db_host, port, args.db_name, args.db_user, password, ssl, args.db_ssl_mode, root_cert
    )


def run(args: argparse.Namespace) -> int:
    def value(flag: str):
        return getattr(args, flag[2:].replace("-", "_"))

    missing = [flag for flag, _, _, required, _ in OPTIONS if required and value(flag) in (None, "")]
    if missing:
        raise SystemExit(
            f"covid-pipeline metabase provision: missing {', '.join(missing)} (or their env vars)"
        )
    try:
        numbers = {flag: float(value(flag)) for flag in ("--db-port", "--timeout", "--db-timeout")}
        collection_id = int(args.collection_id) if args.collection_id not in (None, "") else None
    except ValueError as exc:
        raise SystemExit(f"covid-pipeline metabase provision: not a number: {exc}") from None
    try:
        credentials.refuse_given(args)
        connection = _connection(args, int(numbers["--db-port"]))
        definition = load_definition(args.definition)
        with MetabaseClient(args.url, numbers["--timeout"], numbers["--db-timeout"]) as client:
            authenticate(client, args)
            outcome = provision(client, definition, connection, collection_id)
    except (MetabaseError, credentials.CredentialsError, requests.RequestException) as exc:
        print(f"covid-pipeline metabase provision: {exc}", file=sys.stderr)
        return 1
    for verb, kind, name in outcome.actions:
        print(f"{verb:<8} {kind:<10} {name}")
    print(f"dashboard: {client.url}/dashboard/{outcome.dashboard_id}")
    return 0
