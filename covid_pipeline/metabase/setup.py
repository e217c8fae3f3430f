"""Metabase's first-run setup, done by the deployment so that nobody else can claim it.

Until its first user exists, Metabase hands a setup token to anyone who asks (GET /api/session/properties,
setting `setup-token`, visibility :public) and whoever posts it to POST /api/setup with an e-mail and password
becomes its admin (src/metabase/setup/api.clj). In the AWS deployment this command runs beside Metabase in its
task (services.yaml): it waits for Metabase, completes the setup with the admin from Secrets Manager before
anything else can, logs out of the session the setup opened, and then answers the load balancer's health check
on `--ready-port` only while Metabase is up and set up, so that no request reaches a Metabase without its admin.

    covid-pipeline metabase setup [--url http://localhost:3000] [--admin-secret NAME] [--ready-port 3001]
"""

import argparse
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from covid_pipeline.metabase import credentials
from covid_pipeline.metabase.provision import MetabaseClient, MetabaseError

PROPERTIES = {"setup-token?": str, "has-user-setup": bool}


class SetupError(RuntimeError):
    pass


def healthy(client: MetabaseClient) -> bool:
    """Metabase answers /api/health 200 once initialised (503 while it migrates its database)."""
    try:
        return client.http.get(client.url + "/api/health", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def wait_until_up(client: MetabaseClient, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not healthy(client):
        if time.monotonic() > deadline:
            raise SetupError(f"{client.url} did not become healthy within {seconds:g} s")
        time.sleep(1)


def complete_setup(client: MetabaseClient, email: str, password: str, site_name: str) -> str:
    """'set up' when this call created the first user, 'already set up' when that user is `email`; SetupError
    when someone else is Metabase's first user (they completed setup first)."""
    properties = client.request("GET", "/api/session/properties", shape=PROPERTIES)
    if not properties["has-user-setup"]:
        body = {
            "token": properties.get("setup-token"),
            "user": {"email": email, "password": password, "first_name": "Metabase", "last_name": "Admin"},
            "prefs": {"site_name": site_name},
        }
        try:
            session = client.request("POST", "/api/setup", body, {"id": str})
        except MetabaseError as exc:
            if "HTTP 403" not in str(exc):  # 403: a user was created between our two requests
                raise
        else:
            client.use_session(session["id"])
            client.logout()
            return "set up"
    try:
        client.login(email, password)
    except MetabaseError as exc:
        raise SetupError(
            f"Metabase at {client.url} was set up, but not with {email} ({exc}): someone completed its setup "
            "before the deployment did. Check its users (Admin > People) before trusting it."
        ) from None
    client.logout()
    return "already set up"


def serve_ready(client: MetabaseClient, port: int) -> ThreadingHTTPServer:
    """GET /ready answers 200 while Metabase is healthy (it is set up: this runs after setup), 503 otherwise."""

    class Ready(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path != "/ready":
                self.send_response(404)
            else:
                self.send_response(200 if healthy(client) else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return ThreadingHTTPServer(("0.0.0.0", port), Ready)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--url", default=env("METABASE_URL", "http://localhost:3000"), help="Metabase [env METABASE_URL]"
    )
    parser.add_argument(
        "--user", default=env("METABASE_ADMIN_EMAIL"), help="the admin's e-mail [env METABASE_ADMIN_EMAIL]"
    )
    parser.add_argument(
        "--admin-secret",
        default=env("METABASE_ADMIN_SECRET"),
        help="Secrets Manager secret with the admin's username and password [env METABASE_ADMIN_SECRET]; "
        "else METABASE_ADMIN_PASSWORD",
    )
    parser.add_argument("--site-name", default=env("METABASE_SITE_NAME", "COVID-19 Argentina"))
    parser.add_argument(
        "--wait",
        type=float,
        default=float(env("METABASE_WAIT_SECONDS", "1800")),
        help="seconds to wait for Metabase to start (its first start migrates its database)",
    )
    parser.add_argument(
        "--ready-port",
        type=int,
        default=int(env("METABASE_READY_PORT", "0")),
        help="after setup, answer GET /ready on this port while Metabase is healthy (the load balancer's "
        "health check) [env METABASE_READY_PORT]; 0: exit after setup",
    )
    credentials.add_refused_flags(parser)


def run(args: argparse.Namespace) -> int:
    client = MetabaseClient(args.url)
    try:
        credentials.refuse_given(args)
        email, password = credentials.login(
            args.user, args.admin_secret, "Metabase admin password for {username}: "
        )
        wait_until_up(client, args.wait)
        outcome = complete_setup(client, email, password, args.site_name)
    except (SetupError, MetabaseError, credentials.CredentialsError, requests.RequestException) as exc:
        print(f"covid-pipeline metabase setup: {exc}", file=sys.stderr)
        return 1
    print(f"metabase {outcome}: {client.url}, admin {email}", flush=True)
    if args.ready_port:
        server = serve_ready(client, args.ready_port)
        print(f"answering GET /ready on port {args.ready_port}", flush=True)
        server.serve_forever()
    return 0
