"""The PostgreSQL warehouse: a configured URL (RDS in AWS) or the embedded server."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from dagster import ConfigurableResource
from pydantic import Field, PrivateAttr

from covid_pipeline.resources.database import resolve_url
from covid_pipeline.resources.embedded_postgres import default_data_dir


@dataclass(frozen=True)
class DatabaseLocation:
    """Where the warehouse keeps its data, for messages about it (a full disk)."""

    description: str  # e.g. "the embedded PostgreSQL's data directory /home/x/.covid-pipeline/pgdata"
    data_dir: Path | None = None  # known (and its server log readable) for the embedded server only


class WarehouseResource(ConfigurableResource):
    """Where the cleaned tables live. Leave `database_url` empty to use the embedded PostgreSQL."""

    database_url: str = Field(default="", description="postgresql:// URL; empty = embedded server")
    database_password: str = Field(
        default="", description="Password added to the URL (lets ECS inject it from Secrets Manager)"
    )
    embedded_data_dir: str = Field(
        default="", description="Data folder of the embedded server; empty = $COVID_HOME/pgdata"
    )
    _resolved_url: str | None = PrivateAttr(default=None)

    @property
    def embedded_data_path(self) -> Path:
        return Path(self.embedded_data_dir) if self.embedded_data_dir else default_data_dir()

    @property
    def url(self) -> str:
        if self._resolved_url is None:
            self._resolved_url = resolve_url(
                self.database_url, self.database_password, self.embedded_data_path
            )
        return self._resolved_url

    @contextmanager
    def connect(self, **kwargs) -> Iterator[psycopg.Connection]:
        """A connection whose work commits when the block ends cleanly and rolls back otherwise."""
        with psycopg.connect(self.url, **kwargs) as conn:
            yield conn

    def location(self) -> DatabaseLocation:
        """Where the data lives, for messages (a full disk), without starting or connecting to anything."""
        if not self.database_url:
            return DatabaseLocation(
                f"the embedded PostgreSQL's data directory {self.embedded_data_path}", self.embedded_data_path
            )
        info = psycopg.conninfo.conninfo_to_dict(self.database_url)
        server = info.get("host", "localhost") + (f":{info['port']}" if info.get("port") else "")
        return DatabaseLocation(
            f"the server {server}, database {info.get('dbname', '')} (COVID_DATABASE_URL)"
        )

    def describe(self) -> str:
        """The URL without its password, for metadata and logs."""
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        info.pop("password", None)
        return " ".join(f"{k}={v}" for k, v in sorted(info.items()))
