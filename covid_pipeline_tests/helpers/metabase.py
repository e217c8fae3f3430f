"""A fake Metabase (v0.50+ API shapes) on loopback: the endpoints provisioning uses, with Metabase's validation.

Request bodies are checked against the schemas Metabase declares for these endpoints (malli): a missing or
ill-typed field is answered 400 with `{"errors": {field: message}}`, an unknown route 404 "API endpoint does
not exist.", a request without a valid session 401 "Unauthenticated", an unknown id 404 "Not found.".

Where provisioning can go wrong the fake does what Metabase's source does; each behaviour cites the file it
follows in github.com/metabase/metabase. v0.50 paths (src/metabase/api/*.clj) and their current homes
(src/metabase/warehouses/api.clj, src/metabase/dashboards/write.clj, src/metabase/queries/api/card.clj...)
behave alike in these respects unless a comment says otherwise.

Authentication (src/metabase/server/middleware/session.clj, `merge-current-user-info`): the session of the
`X-Metabase-Session` header, else the API key of the `x-api-key` header (v0.49+: "mb_" and 12 to 254 characters,
src/metabase/api_keys/schema.clj; a malformed or unknown key authenticates nobody). An API key acts as a member of
its group: only one of the Administrators group may add or change a database (`api/check-superuser`).
Before its first user exists (`FakeMetabase(set_up=False)`), GET /api/session/properties hands the setup token to
anyone and POST /api/setup makes whoever sends it first the admin (src/metabase/setup/api.clj).

Connection tests follow the postgres driver (`ssl-params`, src/metabase/driver/postgres.clj): `ssl` true connects
with sslmode `ssl-mode`, "require" when that is missing; the root certificate (`ssl-root-cert-value`, an uploaded PEM
as a data URI, or `ssl-root-cert-path`: src/metabase/models/secret.clj) is read only in the verify modes, and a
verify mode without one fails as pgJDBC does when ~/.postgresql/root.crt is missing. A warehouse reached over TCP
(e.g. conftest.py's `tls_server`, RDS's TLS) is really connected to with those settings, so a certificate the
given CA did not sign, or issued for another name, is refused by TLS itself.

Fake-side settings a test may change (for the embedded PostgreSQL, reached by its socket, which has no SSL):
- `warehouse_ssl`: the warehouse accepts SSL connections (an SSL connection test then succeeds);
- `warehouse_forces_ssl`: it refuses plaintext connections, as RDS with `rds.force_ssl = 1` does;
- `connection_test_delay`: seconds every connection test takes (a slow or distant host);
- `replies[(method, path)] = (status, payload)`: answer that request with this instead (a proxy, another app);
- `version`: "v0.50" (default) or "head", where the two differ: the tabs check of PUT /api/dashboard/:id;
- `initializing`: /api/health answers 503 and the API is not served yet (Metabase migrating its database);
- `api_keys[key] = group`: an API key, of "Administrators" or another group.
"""

import base64
import itertools
import json
import re
import tempfile
import time
import uuid
from contextlib import suppress
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlparse

import psycopg

from covid_pipeline_tests.helpers.http import LoopbackHTTPServer

PROTECTED_PASSWORD = "**MetabasePass**"  # what Metabase shows instead of a stored password
# The postgres driver's :password and :secret connection properties (src/metabase/driver/postgres.clj), shown masked
SENSITIVE = ("password", "ssl-root-cert-value")
# metabase.util/email? (src/metabase/util.clj)
EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?",
    re.IGNORECASE,
)
COMMON_PASSWORDS = {"password1", "123456", "passw0rd", "abc123", "qwerty1"}  # a few of zxcvbn's list
ENGINES = {"postgres", "h2", "mysql", "redshift", "bigquery-cloud-sdk", "snowflake"}
ITEM_MODELS = {
    "dashboard",
    "dataset",
    "metric",
    "no_models",
    "timeline",
    "snippet",
    "collection",
    "pulse",
    "card",
}
CARD_TYPES = ("question", "model", "metric")
ADMIN_ID = 1


class BadRequest(Exception):
    def __init__(self, errors: dict):
        self.errors = errors


class Refused(Exception):
    """Any other error reply: (status, payload)."""

    def __init__(self, status: int, payload):
        self.status, self.payload = status, payload


def _valid_password(value) -> bool:
    """ms/ValidPassword at the default complexity "normal": 6+ characters, a digit, not a common password
    (src/metabase/util/password.clj)."""
    return (
        isinstance(value, str)
        and len(value) >= 6
        and any(c.isdigit() for c in value)
        and value.lower() not in COMMON_PASSWORDS
    )


def _root_certificate(details: dict) -> bytes | None:
    """The CA the driver would use: `ssl-root-cert-value` (a data URI is base64-decoded) or the file at
    `ssl-root-cert-path` (`db-details-prop->secret-map`, src/metabase/models/secret.clj)."""
    value = details.get("ssl-root-cert-value")
    if isinstance(value, str) and value:
        prefix = re.match(r"^data:application/([^;]*);base64,", value)
        return base64.b64decode(value[prefix.end() :]) if prefix else value.encode()
    path = details.get("ssl-root-cert-path")
    if path:
        with open(path, "rb") as file:
            return file.read()
    return None


def _non_blank(value) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
CARD_TYPE = (lambda v: v in CARD_TYPES, "value must be one of: question, model, metric.")


def _native_query(query) -> bool:
    """A saved native question: {type: native, native: {query: "..."}, database: <id>}."""
    return (
        isinstance(query, dict)
        and query.get("type") == "native"
        and _positive_int(query.get("database"))
        and isinstance(query.get("native"), dict)
        and _non_blank(query["native"].get("query"))
    )


def _unique_ids(value, item_ok) -> bool:
    """`ms/maps-with-unique-key`: a sequence of maps, each valid, whose ids are unique."""
    if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
        return False
    ids = [d.get("id") for d in value]
    return len(set(ids)) == len(ids) and all(item_ok(d) for d in value)


def _dashcard(d: dict) -> bool:
    # UpdatedDashboardCard in src/metabase/api/dashboard.clj (v0.50) / src/metabase/dashboards/write.clj
    return (
        _int(d.get("id"))
        and _positive_int(d.get("size_x"))
        and _positive_int(d.get("size_y"))
        and _int(d.get("row"))
        and d["row"] >= 0
        and _int(d.get("col"))
        and d["col"] >= 0
        and (d.get("dashboard_tab_id") is None or _int(d["dashboard_tab_id"]))
        and isinstance(d.get("parameter_mappings") or [], list)
        and isinstance(d.get("series") or [], list)
    )


def _tab(t: dict) -> bool:
    # UpdatedDashboardTab: [:id ms/Int] [:name ms/NonBlankString]
    return _int(t.get("id")) and _non_blank(t.get("name"))


DASHCARDS = (lambda v: _unique_ids(v, _dashcard), "value must be seq of maps in which ids are unique")
TABS = (lambda v: _unique_ids(v, _tab), "value must be seq of maps in which ids are unique")
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

    def __init__(
        self,
        email: str = "admin@example.org",
        password: str = "s3cret-admin",
        set_up: bool = True,
        port: int = 0,
    ):
        self.users = {email: password} if set_up else {}
        self.setup_token = str(uuid.uuid4())
        self.sessions: dict[str, str] = {}  # session id -> user
        self.api_keys: dict[str, str] = {}  # key -> group
        self.initializing = False
        self.public_calls: list[tuple[str, str, dict | None]] = []
        self.calls: list[tuple[str, str, dict | None]] = []
        self.ids = itertools.count(2)  # 1 is the sample database / the admin's personal collection
        self.warehouse_ssl = False
        self.warehouse_forces_ssl = False
        self.connection_test_delay = 0.0
        self.connection_tests: list[dict] = []  # details of every connection test, with its "error"
        self.replies: dict[tuple[str, str], tuple[int, object]] = {}
        self.version = "v0.50"
        self.databases = {
            1: {
                "id": 1,
                "name": "Sample Database",
                "engine": "h2",
                "details": {"db": "sample"},
                "is_sample": True,
            }
        }
        self.collections: dict[int, dict] = {}
        self.add_collection("Admin's Personal Collection", personal_owner_id=ADMIN_ID, id=1)
        self.cards: dict[int, dict] = {}
        self.dashboards: dict[int, dict] = {}
        self.dashcards: dict[int, dict] = {}
        self.tabs: dict[int, dict] = {}
        super().__init__(self._handler(), port)

    @property
    def url(self) -> str:
        return self.base_url

    # ---- state a person creates through the UI, for tests to set up ----

    def add_collection(self, name, parent_id=None, personal_owner_id=None, archived=False, id=None) -> int:
        """A collection. Its `location` is the path of its ancestors' ids, "/" at the root; sub-collections of a
        personal collection have `personal_owner_id` null, which is why src/metabase/api/collection.clj
        (`remove-other-users-personal-subcollections`) finds them by the first id of their location."""
        collection_id = id or next(self.ids)
        location = "/" if parent_id is None else f"{self.collections[parent_id]['location']}{parent_id}/"
        self.collections[collection_id] = {
            "id": collection_id,
            "name": name,
            "description": None,
            "slug": re.sub(r"\W+", "_", name.lower()),
            "location": location,
            "personal_owner_id": personal_owner_id,
            "namespace": None,
            "archived": archived,
        }
        return collection_id

    def add_user(self, user_id: int, name: str) -> int:
        """Another user: Metabase gives every user a personal collection. Returns its id."""
        return self.add_collection(f"{name}'s Personal Collection", personal_owner_id=user_id)

    def add_tab(self, dashboard_id: int, name: str) -> int:
        position = len([t for t in self.tabs.values() if t["dashboard_id"] == dashboard_id])
        tab_id = next(self.ids)
        self.tabs[tab_id] = {"id": tab_id, "dashboard_id": dashboard_id, "name": name, "position": position}
        return tab_id

    def add_dashcard(self, dashboard_id: int, card_id: int | None, tab_id: int | None = None, **place) -> int:
        dashcard_id = next(self.ids)
        self.dashcards[dashcard_id] = {
            "id": dashcard_id,
            "dashboard_id": dashboard_id,
            "dashboard_tab_id": tab_id,
            "card_id": card_id,
            "row": 0,
            "col": 0,
            "size_x": 4,
            "size_y": 4,
        } | place
        return dashcard_id

    def is_personal(self, collection: dict) -> bool:
        """`is_personal` hydration: a personal collection or any collection below one."""
        ancestors = [int(i) for i in collection["location"].strip("/").split("/") if i]
        return any(self.collections[i]["personal_owner_id"] for i in [*ancestors, collection["id"]])

    # ---- routes: (method, pattern) -> handler(match, body, query) ----

    def routes(self):
        return [
            ("GET", r"/api/database/?", self.list_databases),
            ("POST", r"/api/database/?", self.create_database),
            ("GET", r"/api/database/(\d+)", self.get_database),
            ("PUT", r"/api/database/(\d+)", self.update_database),
            ("GET", r"/api/collection/?", self.list_collections),
            ("POST", r"/api/collection/?", self.create_collection),
            ("GET", r"/api/collection/(\d+)", self.get_collection),
            ("PUT", r"/api/collection/(\d+)", self.update_collection),
            ("GET", r"/api/collection/(\d+)/items", self.collection_items),
            ("GET", r"/api/card/?", self.list_cards),
            ("POST", r"/api/card/?", self.create_card),
            ("GET", r"/api/card/(\d+)", self.get_card),
            ("PUT", r"/api/card/(\d+)", self.update_card),
            ("GET", r"/api/dashboard/?", self.list_dashboards),
            ("POST", r"/api/dashboard/?", self.create_dashboard),
            ("GET", r"/api/dashboard/(\d+)", self.get_dashboard),
            ("PUT", r"/api/dashboard/(\d+)", self.update_dashboard),
        ]

    def login(self, body):
        _check(body, {"username": NON_BLANK, "password": NON_BLANK}, {})
        if self.users.get(body["username"]) != body["password"]:
            return 401, {"errors": {"password": "did not match stored password"}}
        session = str(uuid.uuid4())
        self.sessions[session] = body["username"]
        return 200, {"id": session}

    def logout(self, session: str | None):
        """DELETE /api/session (src/metabase/session/api.clj): 404 without a session or for an unknown one."""
        if not session or session not in self.sessions:
            return 404, "Not found."
        del self.sessions[session]
        return 204, None

    def properties(self):
        """GET /api/session/properties: the public settings, the setup token among them (visibility :public,
        src/metabase/setup/settings.clj)."""
        return 200, {
            "setup-token": self.setup_token,
            "has-user-setup": bool(self.users),
            "version": {"tag": "v0.52.0"},
        }

    def setup(self, body):
        """POST /api/setup (src/metabase/setup/api.clj): the token must match, the e-mail be one, the password valid
        (ms/ValidPassword: src/metabase/util/password.clj), the site named; once a user exists, 403."""
        user, prefs = body.get("user") or {}, body.get("prefs") or {}
        errors = {}
        if not _non_blank(body.get("token")) or body["token"] != self.setup_token:
            errors["token"] = "Token does not match the setup token."
        if not isinstance(user.get("email"), str) or not EMAIL.fullmatch(user["email"]):
            errors["email"] = "value must be a valid email address."
        if not _valid_password(user.get("password")):
            errors["password"] = "password is too common."
        if not _non_blank(prefs.get("site_name")):
            errors["site_name"] = "value must be a non-blank string."
        if errors:
            raise BadRequest(errors)
        if self.users:
            raise Refused(
                403,
                {
                    "message": "The /api/setup route can only be used to create the first user, however a user "
                    "currently exists."
                },
            )
        self.users[user["email"]] = user["password"]
        self.site_name = prefs["site_name"]
        session = str(uuid.uuid4())
        self.sessions[session] = user["email"]
        return 200, {"id": session}

    def caller(self, headers) -> str | None:
        """Who a request is from: "admin" or the API key's group; None when it authenticates nobody."""
        if headers.get("X-Metabase-Session") in self.sessions:
            return "Administrators"  # the fake's users are all admins
        key = headers.get("x-api-key")
        if isinstance(key, str) and key.startswith("mb_") and 12 <= len(key) <= 254:
            return self.api_keys.get(key)
        return None

    # ---- databases: src/metabase/api/database.clj (v0.50), src/metabase/warehouses/api.clj (HEAD) ----

    def test_connection(self, details: dict) -> str | None:
        """`test-database-connection`: None if the warehouse accepts `details`, else the error message.

        Really connects, with psycopg, to the given host/port/dbname/user/password, with the driver's SSL settings
        (see the module docstring). The embedded server, reached by its socket, has no SSL: there an SSL attempt
        succeeds only if the fake is told the warehouse has it (`warehouse_ssl`), and the same details are then
        tried in plaintext instead."""
        time.sleep(self.connection_test_delay)
        ssl = details.get("ssl") is True
        mode = (details.get("ssl-mode") or "require") if ssl else "disable"
        root_cert = _root_certificate(details) if mode in ("verify-ca", "verify-full") else None
        socket_host = str(details.get("host", "")).startswith("/")
        if mode in ("verify-ca", "verify-full") and root_cert is None:
            # pgJDBC's LibPQFactory, with no sslrootcert, reads the default file, which Metabase's image lacks
            error = "Could not open SSL root certificate file /home/metabase/.postgresql/root.crt."
        elif socket_host and ssl and not self.warehouse_ssl:
            error = "SSL error: server does not support SSL, but SSL was required"
        elif socket_host and not ssl and self.warehouse_forces_ssl:
            # what PostgreSQL answers when pg_hba.conf only has `hostssl` lines (RDS's rds.force_ssl)
            error = (
                f'FATAL: no pg_hba.conf entry for host "127.0.0.1", user "{details.get("user")}", '
                f'database "{details.get("dbname")}", no encryption'
            )
        else:
            error = self._connect(details, "disable" if socket_host else mode, root_cert)
        self.connection_tests.append(details | {"error": error})
        return error

    @staticmethod
    def _connect(details: dict, sslmode: str, root_cert: bytes | None) -> str | None:
        with tempfile.NamedTemporaryFile(suffix=".pem") as ca:
            ca.write(root_cert or b"")
            ca.flush()
            try:
                psycopg.connect(
                    host=details.get("host"),
                    port=details.get("port"),
                    dbname=details.get("dbname"),
                    user=details.get("user"),
                    password=details.get("password"),
                    sslmode=sslmode,
                    # "require" verifies nothing in pgJDBC (NonValidatingFactory): no root certificate for libpq,
                    # which would otherwise verify against one it finds
                    sslrootcert=ca.name if root_cert else "/nonexistent/root.crt",
                    connect_timeout=5,
                ).close()
            except psycopg.Error as exc:
                return str(exc).strip()
        return None

    def test_connection_details(self, details: dict) -> tuple[dict, str | None]:
        """`test-connection-details` (POST /api/database): when `ssl` is not true, try with SSL first and keep
        `ssl: true` if that works; else try the details as given."""
        if details.get("ssl") is not True and self.test_connection(details | {"ssl": True}) is None:
            return details | {"ssl": True}, None
        return details, self.test_connection(details)

    def list_databases(self, match, body, query):
        data = [db | {"details": self._masked(db["details"])} for db in self.databases.values()]
        return 200, {"data": data, "total": len(data)}

    def get_database(self, match, body, query):
        database = self._find(self.databases, match)
        return 200, database | {"details": self._masked(database["details"])}

    def create_database(self, match, body, query):
        _check(body, {"name": NON_BLANK, "engine": ENGINE, "details": A_MAP}, {"is_full_sync": A_BOOL})
        details, error = self.test_connection_details(body["details"])
        if error:
            return 400, {"message": error}  # (dissoc details-or-error :valid)
        database = {
            "id": next(self.ids),
            "name": body["name"],
            "engine": body["engine"],
            "details": details,
            "is_full_sync": body.get("is_full_sync", True),
            "is_sample": False,
        }
        self.databases[database["id"]] = database
        return 200, database | {"details": self._masked(database["details"])}

    def update_database(self, match, body, query):
        """PUT merges `details` into the stored ones (`upsert-sensitive-fields`: the masked password stands for
        the stored one) and re-tests the connection, with the merged details as they are, when they changed."""
        database = self._find(self.databases, match)
        _check(body, {}, {"name": NON_BLANK, "engine": ENGINE, "details": A_MAP, "description": A_STRING})
        details = body.get("details")
        if details is not None:
            for secret in SENSITIVE:
                if details.get(secret) == PROTECTED_PASSWORD:
                    details = details | {secret: database["details"].get(secret)}
            details = database["details"] | details
            if details != database["details"]:
                error = self.test_connection(details)
                if error:
                    return 400, {"message": error}
        database.update({k: v for k, v in (body | {"details": details}).items() if v is not None})
        return 200, database | {"details": self._masked(database["details"])}

    # ---- collections: src/metabase/api/collection.clj (v0.50) ----

    def list_collections(self, match, body, query):
        """Admins see every collection, other users' personal ones and their sub-collections included, unless
        `exclude-other-user-collections`; archived ones only with `archived=true` (then without the root)."""
        archived = query.get("archived", ["false"])[0] == "true"
        exclude_others = query.get("exclude-other-user-collections", ["false"])[0] == "true"
        listed = []
        for collection in self.collections.values():
            if collection["archived"] != archived:
                continue
            if exclude_others and self._other_users(collection):
                continue
            listed.append(collection | {"can_write": True, "is_personal": self.is_personal(collection)})
        root = {"id": "root", "name": "Our analytics", "can_write": True, "effective_ancestors": []}
        return 200, listed if archived else [root, *listed]

    def _other_users(self, collection: dict) -> bool:
        first = ([int(i) for i in collection["location"].strip("/").split("/") if i] or [collection["id"]])[0]
        owner = self.collections[first]["personal_owner_id"]
        return owner is not None and owner != ADMIN_ID

    def get_collection(self, match, body, query):
        collection = self._find(self.collections, match)
        return 200, collection | {"can_write": True, "is_personal": self.is_personal(collection)}

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
        if body.get("parent_id") is not None and body["parent_id"] not in self.collections:
            raise LookupError
        collection_id = self.add_collection(body["name"], parent_id=body.get("parent_id"))
        self.collections[collection_id]["description"] = body.get("description")
        return 200, self.collections[collection_id]

    def update_collection(self, match, body, query):
        collection = self._find(self.collections, match)
        _check(
            body, {}, {"name": NON_BLANK, "description": NON_BLANK, "archived": A_BOOL, "parent_id": POSITIVE}
        )
        collection.update({k: body[k] for k in ("name", "description", "archived") if k in body})
        return 200, collection

    def collection_items(self, match, body, query):
        """Cards appear as models "card" (questions), "dataset" (models) and "metric", archived items only with
        `archived=true` (`card-query`, src/metabase/api/collection.clj); newer versions list dashboard questions
        only with `show_dashboard_questions=true`."""
        collection = self._find(self.collections, match)
        models = query.get("models", sorted(ITEM_MODELS))
        if not set(models) <= ITEM_MODELS:
            raise BadRequest({"models": "nullable vector of enum of " + ", ".join(sorted(ITEM_MODELS))})
        archived = query.get("archived", ["false"])[0] == "true"
        dashboard_questions = query.get("show_dashboard_questions", ["false"])[0] == "true"
        as_model = {"question": "card", "model": "dataset", "metric": "metric"}
        items = [
            {
                "id": c["id"],
                "name": c["name"],
                "description": c["description"],
                "model": as_model[c["type"]],
                "display": c["display"],
                "dashboard_id": c["dashboard_id"],
            }
            for c in self.cards.values()
            if c["collection_id"] == collection["id"]
            and c["archived"] == archived
            and as_model[c["type"]] in models
            and (c["dashboard_id"] is None or dashboard_questions)
        ] + [
            {"id": d["id"], "name": d["name"], "description": d["description"], "model": "dashboard"}
            for d in self.dashboards.values()
            if d["collection_id"] == collection["id"] and d["archived"] == archived and "dashboard" in models
        ]
        return 200, {"data": items, "total": len(items), "models": models, "limit": None, "offset": None}

    # ---- cards: src/metabase/api/card.clj (v0.50), src/metabase/queries/api/card.clj (HEAD) ----

    def list_cards(self, match, body, query):
        """`f=all` (the default): every card that is not archived, of any type (questions, models, metrics,
        dashboard questions); `f=archived`: the archived ones (trashed, or archived with their dashboard)."""
        f = query.get("f", ["all"])[0]
        if f not in ("all", "mine", "archived"):
            raise BadRequest({"f": "nullable enum of all, mine, bookmarked, database, table, archived"})
        cards = [c for c in self.cards.values() if c["archived"] == (f == "archived")]
        return 200, sorted(cards, key=lambda c: c["name"].lower())

    def get_card(self, match, body, query):
        return 200, self._find(self.cards, match)

    def create_card(self, match, body, query):
        _check(
            body,
            CARD_FIELDS,
            {
                "description": NON_BLANK,
                "collection_id": POSITIVE,
                "type": CARD_TYPE,
                "dashboard_id": POSITIVE,
            },
        )
        self._check_query(body["dataset_query"])
        if body.get("collection_id") is not None and body["collection_id"] not in self.collections:
            raise LookupError
        card = {
            "id": next(self.ids),
            "archived": False,
            "description": None,
            "collection_id": None,
            "type": "question",
            "dashboard_id": None,
        } | {k: v for k, v in body.items() if v is not None}
        self.cards[card["id"]] = card
        return 200, card

    def update_card(self, match, body, query):
        card = self._find(self.cards, match)
        _check(
            body,
            {},
            CARD_FIELDS
            | {"description": A_STRING, "collection_id": POSITIVE, "archived": A_BOOL, "type": CARD_TYPE},
        )
        if "dataset_query" in body:
            self._check_query(body["dataset_query"])
        card.update({k: v for k, v in body.items() if v is not None or k == "description"})
        return 200, card

    # ---- dashboards: src/metabase/api/dashboard.clj (v0.50), src/metabase/dashboards/write.clj (HEAD) ----

    def list_dashboards(self, match, body, query):
        """GET /api/dashboard (deprecated but kept): `f=all` the non-archived, `f=archived` the archived."""
        f = query.get("f", ["all"])[0]
        if f not in ("all", "mine", "archived"):
            raise BadRequest({"f": "nullable enum of all, mine, archived"})
        dashboards = [d for d in self.dashboards.values() if d["archived"] == (f == "archived")]
        return 200, sorted(dashboards, key=lambda d: d["name"].lower())

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
        tabs = sorted((t for t in self.tabs.values() if t["dashboard_id"] == dashboard["id"]), key=_position)
        return 200, dashboard | {"dashcards": dashcards, "tabs": tabs}

    def update_dashboard(self, match, body, query):
        """`update-dashboard`: the dashboard's own fields first; archiving it archives its dashboard questions
        (HEAD). With `dashcards`, within the same transaction: the dashboard as it was must not be archived
        (404); the tabs check (see _check_tabs); `tabs` are then replaced (the ones not sent deleted with their
        dashcards, negative ids created) and the dashcards too."""
        dashboard = self._find(self.dashboards, match)
        _check(
            body,
            {},
            {"name": NON_BLANK, "archived": A_BOOL}
            | DASHBOARD_FIELDS
            | {"dashcards": DASHCARDS, "tabs": TABS},
        )
        if "dashcards" in body:
            body["dashcards"] = self._check_tabs(dashboard["id"], body["dashcards"], body.get("tabs") or [])
            self._check_dashcards(dashboard, body["dashcards"], body.get("tabs") or [])
        if "archived" in body and body["archived"] != dashboard["archived"]:
            for card in self.cards.values():
                if card["dashboard_id"] == dashboard["id"]:
                    card["archived"] = body["archived"]
        dashboard.update(
            {k: body[k] for k in ("name", "description", "collection_id", "archived") if k in body}
        )
        if "dashcards" in body:
            tab_ids = self._replace_tabs(dashboard["id"], body.get("tabs") or [])
            self._replace_dashcards(dashboard["id"], body["dashcards"], tab_ids)
        return self.get_dashboard(match, None, query)

    def _check_tabs(self, dashboard_id: int, wanted: list[dict], tabs: list[dict]) -> list[dict]:
        """v0.50 (src/metabase/api/dashboard.clj): if the dashboard *has* tabs, every dashcard needs a
        `dashboard_tab_id`, else 400. HEAD (src/metabase/dashboards/write.clj): the check is on the tabs *sent*
        (one tab sent takes the dashcards without one), so a client that sends none deletes them all, silently."""
        if self.version == "head":
            if len(tabs) == 1:
                wanted = [
                    d if d.get("dashboard_tab_id") is not None else d | {"dashboard_tab_id": tabs[0]["id"]}
                    for d in wanted
                ]
            having_tabs = bool(tabs)
        else:
            having_tabs = any(t["dashboard_id"] == dashboard_id for t in self.tabs.values())
        if having_tabs and not all(d.get("dashboard_tab_id") is not None for d in wanted):
            raise Refused(400, "This dashboard has tab, makes sure every card has a tab")
        return wanted

    def _check_dashcards(self, dashboard: dict, wanted: list[dict], tabs: list[dict]) -> None:
        if dashboard["archived"]:  # api/check-not-archived, src/metabase/api/common.clj
            raise Refused(404, {"message": "The object has been archived.", "error_code": "archived"})
        known_tabs = {t["id"] for t in tabs}
        current = {i for i, d in self.dashcards.items() if d["dashboard_id"] == dashboard["id"]}
        for dashcard in wanted:
            tab = dashcard.get("dashboard_tab_id")
            if tab is not None and tab not in known_tabs:
                raise BadRequest({"dashcards": f"dashboard tab {tab} is not among the dashboard's tabs"})
            card_id = dashcard.get("card_id")
            if card_id is None or dashcard["id"] in current:
                continue
            card = self.cards.get(card_id)  # create-dashcards!: the card must exist and not be archived
            if card is None:
                raise LookupError
            if card["archived"]:
                raise Refused(404, {"message": "The object has been archived.", "error_code": "archived"})
            if card["dashboard_id"] not in (None, dashboard["id"]):  # HEAD: a question internal to another
                raise Refused(400, "Invalid Request.")

    def _replace_tabs(self, dashboard_id: int, wanted: list[dict]) -> dict[int, int]:
        """`dashboard-tab/do-update-tabs!`: returns the ids the dashcards' `dashboard_tab_id` refer to."""
        current = {i for i, t in self.tabs.items() if t["dashboard_id"] == dashboard_id}
        real = {}
        for position, tab in enumerate(wanted):
            if tab["id"] in current:
                self.tabs[tab["id"]].update(name=tab["name"], position=position)
                real[tab["id"]] = tab["id"]
            else:
                real[tab["id"]] = next(self.ids)
                self.tabs[real[tab["id"]]] = {
                    "id": real[tab["id"]],
                    "dashboard_id": dashboard_id,
                    "name": tab["name"],
                    "position": position,
                }
        for gone in current - set(real.values()):
            del self.tabs[gone]
            for dashcard_id in [i for i, d in self.dashcards.items() if d["dashboard_tab_id"] == gone]:
                del self.dashcards[dashcard_id]  # ON DELETE CASCADE
        return real

    def _replace_dashcards(self, dashboard_id: int, wanted: list[dict], tab_ids: dict[int, int]) -> None:
        """Metabase's classify-changes: negative ids are created, known ids updated, the others deleted. Then
        (HEAD) its dashboard questions are archived when off the dashboard, restored when on it."""
        current = {i for i, d in self.dashcards.items() if d["dashboard_id"] == dashboard_id}
        for dashcard in wanted:
            fields = {k: dashcard.get(k) for k in ("card_id", "row", "col", "size_x", "size_y")}
            fields["dashboard_tab_id"] = tab_ids.get(dashcard.get("dashboard_tab_id"))
            if dashcard["id"] in current:
                self.dashcards[dashcard["id"]].update(fields)
            else:
                new_id = next(self.ids)
                self.dashcards[new_id] = {"id": new_id, "dashboard_id": dashboard_id} | fields
        for stale in current - {d["id"] for d in wanted}:
            del self.dashcards[stale]
        on_it = {d["card_id"] for d in wanted}
        for card in self.cards.values():
            if card["dashboard_id"] == dashboard_id:
                card["archived"] = card["id"] not in on_it

    def _check_query(self, query: dict) -> None:
        if not _native_query(query):
            raise BadRequest({"dataset_query": "Invalid query: expected a native query with a database id"})
        if query["database"] not in self.databases:
            raise BadRequest({"dataset_query": f"Database {query['database']} does not exist."})

    @staticmethod
    def _masked(details: dict) -> dict:
        return details | {secret: PROTECTED_PASSWORD for secret in SENSITIVE if details.get(secret)}

    @staticmethod
    def _find(table: dict, match):
        """api/check-404 on an unknown id."""
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

            def do_DELETE(self):
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
                    replaced = fake.replies.get((self.command, url.path.rstrip("/")))
                    if replaced:
                        fake.calls.append((self.command, url.path, body))
                        return self._reply(*replaced)
                    request = (self.command, url.path.rstrip("/"))
                    if fake.initializing:  # src/metabase/server/routes.clj: 503 until initialised
                        return self._reply(503, {"status": "initializing", "progress": 0.5})
                    public = {
                        ("GET", "/api/health"): lambda: (200, {"status": "ok"}),
                        ("GET", "/api/session/properties"): fake.properties,
                        ("POST", "/api/setup"): lambda: fake.setup(body),
                        ("POST", "/api/session"): lambda: fake.login(body),
                        ("DELETE", "/api/session"): lambda: fake.logout(
                            self.headers.get("X-Metabase-Session")
                        ),
                    }
                    if request in public:
                        fake.public_calls.append((self.command, url.path, body))
                        return self._reply(*public[request]())
                    caller = fake.caller(self.headers)
                    if caller is None:
                        return self._reply(401, "Unauthenticated")
                    if (
                        request[1].startswith("/api/database")
                        and self.command != "GET"
                        and caller != "Administrators"
                    ):
                        return self._reply(
                            403, "You don't have permissions to do that."
                        )  # api/check-superuser
                    for method, pattern, handler in fake.routes():
                        match = re.fullmatch(pattern, url.path)
                        if method == self.command and match:
                            fake.calls.append((self.command, url.path, body))
                            return self._reply(*handler(match, body, query))
                    return self._reply(404, "API endpoint does not exist.")
                except BadRequest as exc:
                    return self._reply(400, {"errors": exc.errors})
                except Refused as exc:
                    return self._reply(exc.status, exc.payload)
                except LookupError:
                    return self._reply(404, "Not found.")

            def _reply(self, status: int, payload):
                if status == 204:  # no content, no body
                    self.send_response(204)
                    self.end_headers()
                    return
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                kind = "text/plain" if isinstance(payload, str) else "application/json"
                self.send_header("Content-Type", f"{kind}; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                with suppress(BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    self.wfile.write(data)

        return Handler


def _position(tab: dict) -> int:
    return tab["position"]
