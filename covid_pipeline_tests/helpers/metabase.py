"""A fake Metabase (v0.50 API shapes) on loopback: the endpoints provisioning uses, with Metabase's validation.

Request bodies are checked against the same schemas Metabase declares for these endpoints (malli, in
metabase.api.*): a missing or ill-typed field is answered 400 with `{"errors": {field: message}}`, an
unknown route 404 "API endpoint does not exist.", a request without a valid session 401 "Unauthenticated".
Responses carry the fields Metabase returns that a client relies on (ids, names, `data` wrappers, dashcards).
"""

import itertools
import json
import re
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

from covid_pipeline_tests.helpers.http import LoopbackHTTPServer

PROTECTED_PASSWORD = "**MetabasePass**"  # what Metabase shows instead of a stored password
ENGINES = {"postgres", "h2", "mysql", "redshift", "bigquery-cloud-sdk", "snowflake"}
ITEM_MODELS = {"dashboard", "dataset", "no_models", "timeline", "snippet", "collection", "pulse", "card"}


class BadRequest(Exception):
    def __init__(self, errors: dict):
        self.errors = errors


def _non_blank(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check(body: dict, required: dict, optional: dict) -> None:
    """Metabase's endpoint schemas: required keys must pass, optional ones may be null or absent."""
    errors = {}
    for key, (test, message) in required.items():
        if not test(body.get(key)):
            errors[key] = message
    for key, (test, message) in optional.items():
        if body.get(key) is not None and not test(body[key]):
            errors[key] = "nullable " + message
    if errors:
        raise BadRequest(errors)


NON_BLANK = (_non_blank, "value must be a non-blank string.")
POSITIVE = (_positive_int, "value must be an integer greater than zero.")
A_MAP = (lambda v: isinstance(v, dict), "value must be a map.")
A_STRING = (lambda v: isinstance(v, str), "value must be a string.")
A_BOOL = (lambda v: isinstance(v, bool), "value must be a boolean.")
A_SEQ = (lambda v: isinstance(v, list), "value must be a sequence.")
ENGINE = (lambda v: v in ENGINES, "value must be a valid database engine.")


def _native_query(query) -> bool:
    """A saved native question: {type: native, native: {query: "..."}, database: <id>}."""
    return (
        isinstance(query, dict)
        and query.get("type") == "native"
        and _positive_int(query.get("database"))
        and isinstance(query.get("native"), dict)
        and _non_blank(query["native"].get("query"))
    )


def _dashcards(value) -> bool:
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        return False
    ids = [d.get("id") for d in value]
    return len(set(ids)) == len(ids) and all(
        isinstance(d.get("id"), int)
        and _positive_int(d.get("size_x"))
        and _positive_int(d.get("size_y"))
        and isinstance(d.get("row"), int)
        and d["row"] >= 0
        and isinstance(d.get("col"), int)
        and d["col"] >= 0
        and isinstance(d.get("parameter_mappings") or [], list)
        and isinstance(d.get("series") or [], list)
        for d in value
    )


DASHCARDS = (_dashcards, "value must be seq of maps in which ids are unique")
# POST /api/card requires these; PUT /api/card/:id accepts any of them.
CARD_FIELDS = {
    "name": NON_BLANK,
    "dataset_query": A_MAP,
    "display": NON_BLANK,
    "visualization_settings": A_MAP,
}
DASHBOARD_FIELDS = {"description": A_STRING, "collection_id": POSITIVE}


class FakeMetabase(LoopbackHTTPServer):
    """State in memory; `calls` records (method, path, body) of every authenticated request."""

    def __init__(self, email: str = "admin@example.org", password: str = "s3cret-admin"):
        self.users = {email: password}
        self.sessions: set[str] = set()
        self.calls: list[tuple[str, str, dict | None]] = []
        self.ids = itertools.count(2)  # 1 is the sample database / the admin's personal collection
        self.databases = {
            1: {
                "id": 1,
                "name": "Sample Database",
                "engine": "h2",
                "details": {"db": "sample"},
                "is_sample": True,
            }
        }
        self.collections = {
            1: {
                "id": 1,
                "name": "Admin's Personal Collection",
                "personal_owner_id": 1,
                "location": "/",
                "archived": False,
            }
        }
        self.cards: dict[int, dict] = {}
        self.dashboards: dict[int, dict] = {}
        self.dashcards: dict[int, dict] = {}
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        return self.base_url

    # ---- routes: (method, pattern) -> handler(match, body, query) ----

    def routes(self):
        return [
            ("GET", r"/api/database/?", self.list_databases),
            ("POST", r"/api/database/?", self.create_database),
            ("PUT", r"/api/database/(\d+)", self.update_database),
            ("GET", r"/api/collection/?", self.list_collections),
            ("POST", r"/api/collection/?", self.create_collection),
            ("PUT", r"/api/collection/(\d+)", self.update_collection),
            ("GET", r"/api/collection/(\d+)/items", self.collection_items),
            ("POST", r"/api/card/?", self.create_card),
            ("PUT", r"/api/card/(\d+)", self.update_card),
            ("POST", r"/api/dashboard/?", self.create_dashboard),
            ("GET", r"/api/dashboard/(\d+)", self.get_dashboard),
            ("PUT", r"/api/dashboard/(\d+)", self.update_dashboard),
        ]

    def login(self, body):
        _check(body, {"username": NON_BLANK, "password": NON_BLANK}, {})
        if self.users.get(body["username"]) != body["password"]:
            return 401, {"errors": {"password": "did not match stored password"}}
        session = str(uuid.uuid4())
        self.sessions.add(session)
        return 200, {"id": session}

    def list_databases(self, match, body, query):
        data = [db | {"details": self._masked(db["details"])} for db in self.databases.values()]
        return 200, {"data": data, "total": len(data)}

    def create_database(self, match, body, query):
        _check(body, {"name": NON_BLANK, "engine": ENGINE, "details": A_MAP}, {"is_full_sync": A_BOOL})
        database = {
            "id": next(self.ids),
            "name": body["name"],
            "engine": body["engine"],
            "details": body["details"],
            "is_full_sync": body.get("is_full_sync", True),
            "is_sample": False,
        }
        self.databases[database["id"]] = database
        return 200, database | {"details": self._masked(database["details"])}

    def update_database(self, match, body, query):
        database = self._find(self.databases, match)
        _check(body, {}, {"name": NON_BLANK, "engine": ENGINE, "details": A_MAP, "description": A_STRING})
        details = body.get("details")
        if details and details.get("password") == PROTECTED_PASSWORD:
            details = details | {"password": database["details"].get("password")}
        database.update({k: v for k, v in (body | {"details": details}).items() if v is not None})
        return 200, database | {"details": self._masked(database["details"])}

    def list_collections(self, match, body, query):
        root = {"id": "root", "name": "Our analytics", "can_write": True, "effective_ancestors": []}
        return 200, [root] + [c | {"can_write": True} for c in self.collections.values() if not c["archived"]]

    def create_collection(self, match, body, query):
        _check(
            body,
            {"name": NON_BLANK},
            {
                "description": NON_BLANK,
                "parent_id": POSITIVE,
                "namespace": NON_BLANK,
                "authority_level": A_STRING,
            },
        )
        collection = {
            "id": next(self.ids),
            "name": body["name"],
            "description": body.get("description"),
            "slug": re.sub(r"\W+", "_", body["name"].lower()),
            "location": "/",
            "personal_owner_id": None,
            "namespace": body.get("namespace"),
            "archived": False,
        }
        self.collections[collection["id"]] = collection
        return 200, collection

    def update_collection(self, match, body, query):
        collection = self._find(self.collections, match)
        _check(
            body, {}, {"name": NON_BLANK, "description": NON_BLANK, "archived": A_BOOL, "parent_id": POSITIVE}
        )
        collection.update({k: body[k] for k in ("name", "description", "archived") if k in body})
        return 200, collection

    def collection_items(self, match, body, query):
        collection_id = int(match.group(1))
        self._find(self.collections, match)
        models = query.get("models", sorted(ITEM_MODELS))
        if not set(models) <= ITEM_MODELS:
            raise BadRequest({"models": "nullable vector of enum of " + ", ".join(sorted(ITEM_MODELS))})
        items = [
            {
                "id": c["id"],
                "name": c["name"],
                "description": c["description"],
                "model": "card",
                "display": c["display"],
            }
            for c in self.cards.values()
            if c["collection_id"] == collection_id and not c["archived"] and "card" in models
        ] + [
            {"id": d["id"], "name": d["name"], "description": d["description"], "model": "dashboard"}
            for d in self.dashboards.values()
            if d["collection_id"] == collection_id and not d["archived"] and "dashboard" in models
        ]
        return 200, {"data": items, "total": len(items), "models": models, "limit": None, "offset": None}

    def create_card(self, match, body, query):
        _check(body, CARD_FIELDS, {"description": NON_BLANK, "collection_id": POSITIVE})
        self._check_query(body["dataset_query"])
        card = {"id": next(self.ids), "archived": False, "description": None, "collection_id": None} | body
        self.cards[card["id"]] = card
        return 200, card

    def update_card(self, match, body, query):
        card = self._find(self.cards, match)
        _check(
            body, {}, CARD_FIELDS | {"description": A_STRING, "collection_id": POSITIVE, "archived": A_BOOL}
        )
        if "dataset_query" in body:
            self._check_query(body["dataset_query"])
        card.update(body)
        return 200, card

    def create_dashboard(self, match, body, query):
        _check(body, {"name": NON_BLANK}, DASHBOARD_FIELDS | {"parameters": A_SEQ, "cache_ttl": POSITIVE})
        dashboard = {
            "id": next(self.ids),
            "name": body["name"],
            "description": body.get("description"),
            "collection_id": body.get("collection_id"),
            "parameters": body.get("parameters") or [],
            "archived": False,
        }
        self.dashboards[dashboard["id"]] = dashboard
        return 200, dashboard

    def get_dashboard(self, match, body, query):
        dashboard = self._find(self.dashboards, match)
        dashcards = [
            d | {"card": self.cards.get(d["card_id"])}
            for d in self.dashcards.values()
            if d["dashboard_id"] == dashboard["id"]
        ]
        return 200, dashboard | {"dashcards": dashcards, "tabs": []}

    def update_dashboard(self, match, body, query):
        dashboard = self._find(self.dashboards, match)
        _check(body, {}, {"name": NON_BLANK} | DASHBOARD_FIELDS | {"dashcards": DASHCARDS, "tabs": A_SEQ})
        dashboard.update({k: body[k] for k in ("name", "description", "collection_id") if k in body})
        if "dashcards" in body:
            self._replace_dashcards(dashboard["id"], body["dashcards"])
        return self.get_dashboard(match, None, query)

    def _replace_dashcards(self, dashboard_id: int, wanted: list[dict]) -> None:
        """Metabase's classify-changes: negative ids are created, known ids updated, the others deleted."""
        current = {i for i, d in self.dashcards.items() if d["dashboard_id"] == dashboard_id}
        for dashcard in wanted:
            if dashcard.get("card_id") is not None and dashcard["card_id"] not in self.cards:
                raise BadRequest({"dashcards": f"card {dashcard['card_id']} does not exist"})
        for dashcard in wanted:
            fields = {k: dashcard.get(k) for k in ("card_id", "row", "col", "size_x", "size_y")}
            if dashcard["id"] in current:
                self.dashcards[dashcard["id"]].update(fields)
            else:
                new_id = next(self.ids)
                self.dashcards[new_id] = {"id": new_id, "dashboard_id": dashboard_id} | fields
        for stale in current - {d["id"] for d in wanted}:
            del self.dashcards[stale]

    def _check_query(self, query: dict) -> None:
        if not _native_query(query):
            raise BadRequest({"dataset_query": "Invalid query: expected a native query with a database id"})
        if query["database"] not in self.databases:
            raise BadRequest({"dataset_query": f"Database {query['database']} does not exist."})

    @staticmethod
    def _masked(details: dict) -> dict:
        return details | ({"password": PROTECTED_PASSWORD} if details.get("password") else {})

    @staticmethod
    def _find(table: dict, match):
        item = table.get(int(match.group(1)))
        if item is None:
            raise LookupError
        return item

    # ---- HTTP ----

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._dispatch()

            def do_POST(self):
                self._dispatch()

            def do_PUT(self):
                self._dispatch()

            def _dispatch(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except json.JSONDecodeError:
                    return self._reply(400, "Malformed JSON in request body.")
                if self.command in ("POST", "PUT") and not isinstance(body, dict):
                    body = {} if body is None else body
                try:
                    if (self.command, url.path.rstrip("/")) == ("POST", "/api/session"):
                        return self._reply(*fake.login(body))
                    if self.headers.get("X-Metabase-Session") not in fake.sessions:
                        return self._reply(401, "Unauthenticated")
                    for method, pattern, handler in fake.routes():
                        match = re.fullmatch(pattern, url.path)
                        if method == self.command and match:
                            fake.calls.append((self.command, url.path, body))
                            return self._reply(*handler(match, body, query))
                    return self._reply(404, "API endpoint does not exist.")
                except BadRequest as exc:
                    return self._reply(400, {"errors": exc.errors})
                except LookupError:
                    return self._reply(404, "Not found.")

            def _reply(self, status: int, payload):
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                kind = "text/plain" if isinstance(payload, str) else "application/json"
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
