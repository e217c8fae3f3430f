"""Where the Metabase commands get secrets: the environment, a Secrets Manager secret, or a prompt; never the
command line, where every user of the machine sees them (`ps`, shell history)."""

import argparse
import contextlib
import getpass
import json
import os
import sys

REFUSED_FLAGS = {
    "--password": "METABASE_ADMIN_PASSWORD, --admin-secret, or the prompt",
    "--api-key": "METABASE_API_KEY or --api-key-secret",
    "--db-password": "METABASE_DB_PASSWORD or --db-secret",
}


class CredentialsError(RuntimeError):
    pass


def _dest(flag: str) -> str:
    return "refused_" + flag[2:].replace("-", "_")


def add_refused_flags(parser: argparse.ArgumentParser) -> None:
    """The secret-taking flags, accepted by the parser only to be refused with a reason (refuse_given)."""
    for flag in REFUSED_FLAGS:
        parser.add_argument(flag, dest=_dest(flag), help=argparse.SUPPRESS)


def refuse_given(args: argparse.Namespace) -> None:
    for flag, instead in REFUSED_FLAGS.items():
        if getattr(args, _dest(flag), None) is not None:
            raise CredentialsError(
                f"{flag} is not accepted: a secret on the command line is visible to every user of the machine; "
                f"use {instead}"
            )


def secret_string(secret_id: str) -> str:
    """The SecretString of a Secrets Manager secret (name or ARN), with the AWS CLI's usual credentials."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (BotoCoreError, ClientError, KeyError) as exc:
        raise CredentialsError(f"secret {secret_id}: {exc}") from None


def secret_fields(secret_id: str) -> dict:
    """A secret holding JSON (the deployment's: {"username": ..., "password": ...})."""
    try:
        value = json.loads(secret_string(secret_id))
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise CredentialsError(
            f"secret {secret_id}: expected a JSON object such as {{'username': …, 'password': …}}"
        )
    return value


def api_key(secret_id: str | None) -> str | None:
    """METABASE_API_KEY, else the secret's value (the key itself, or JSON with "api_key")."""
    if os.environ.get("METABASE_API_KEY"):
        return os.environ["METABASE_API_KEY"]
    if not secret_id:
        return None
    value = secret_string(secret_id)
    with contextlib.suppress(ValueError, TypeError, KeyError):
        value = json.loads(value)["api_key"]
    return value.strip()


def login(username: str | None, secret_id: str | None, prompt: str) -> tuple[str, str]:
    """(username, password): the secret's, else METABASE_ADMIN_EMAIL/--user with METABASE_ADMIN_PASSWORD, else a
    password typed at the prompt (only when a person is there to type it)."""
    password = os.environ.get("METABASE_ADMIN_PASSWORD", "")
    if secret_id:
        fields = secret_fields(secret_id)
        username, password = username or fields.get("username"), fields.get("password", "")
    if not username:
        raise CredentialsError("no admin e-mail: give --user (METABASE_ADMIN_EMAIL) or --admin-secret")
    if not password and sys.stdin.isatty():
        password = getpass.getpass(prompt.format(username=username))
    if not password:
        raise CredentialsError(
            f"no password for {username}: set METABASE_ADMIN_PASSWORD, give --admin-secret, or run it in a terminal"
        )
    return username, password
