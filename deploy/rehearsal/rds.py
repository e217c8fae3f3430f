"""An RDS for PostgreSQL of the real shape, on the embedded server's binaries (the `pgserver` wheel).

What the deployment meets on RDS, and a superuser PostgreSQL would hide:

- the master user is a plain `LOGIN CREATEROLE CREATEDB` role, a member of `rds_superuser`, never a
  superuser (RDS keeps that, `rdsadmin`, to itself: here it logs in on the server's own unix socket
  only, for the rehearsal to set the servers up and read them back);
  https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/Appendix.PostgreSQL.CommonDBATasks.Roles.html
- the database named by `DBName` exists, owned by the master user;
- TCP connections must use TLS (`rds.force_ssl`) and a SCRAM password, on the endpoint's port 5432,
  with a certificate for the endpoint's name signed by the CA the clients are given (pgserver's
  build has no TLS: `tls.TlsFront` speaks it on the endpoint, in front of the server, which listens
  on a port of its own that no client is given);
- `log_statement = 'ddl'`, as RDS users commonly set it: every role statement lands in the log;
- the read replica is a streaming standby made by `pg_basebackup` of the master, started as a hot
  standby: read-only, and roles, grants and data reach it by replication only.

In the rehearsal each endpoint has an address of its own in 127.0.0.0/8 (so both can use port 5432),
and the endpoint's DNS name is resolved by the clients' libpq through PGHOSTADDR (see `Endpoint.libpq`).
The test suite's TLS server (conftest.py, `tls_server`) is a master alone, named `localhost`.
"""

import contextlib
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from deploy.rehearsal.tls import CertificateAuthority, ServerCertificate, TlsFront

RDS_ADMIN = "rdsadmin"
PORT = 5432  # RDS's default; the init task's libpq variables name no port
# As root, PostgreSQL refuses to start: pgserver runs its binaries as this user, and so do we.
SERVER_USER = "pgserver" if os.geteuid() == 0 else None


def _binaries() -> Path:
    from covid_pipeline.resources.embedded_postgres import client_binary

    return client_binary("postgres").parent


def _run(*command: str, **kwargs) -> None:
    """A PostgreSQL program as the server's user; its output in the error when it fails."""
    with tempfile.TemporaryFile("w+") as output:  # (pipes would keep pg_ctl's postmaster waiting)
        result = subprocess.run(
            [str(_binaries() / command[0]), *command[1:]],
            user=SERVER_USER,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            **kwargs,
        )
        if result.returncode:
            output.seek(0)
            raise RuntimeError(f"{command[0]} failed ({result.returncode}): {output.read()[-3000:]}")


def _owned_by_server(*paths: Path) -> None:
    if SERVER_USER:
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(SERVER_USER)
        for path in paths:
            ensure_prefix_permissions(path)
            shutil.chown(path, SERVER_USER, SERVER_USER)


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def free_loopback_address(port: int = PORT) -> str:
    """An address in 127.0.0.0/8 on which `port` is free (the whole range is the loopback)."""
    for _ in range(50):
        address = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return address
    raise RuntimeError(f"no loopback address with port {port} free")


@dataclass(frozen=True)
class Endpoint:
    """An instance's endpoint: the DNS name RDS gives it, the address it listens on, its port."""

    host: str
    address: str
    port: int = PORT

    def libpq(self) -> dict[str, str]:
        """libpq's variables that reach this endpoint by name (PGHOSTADDR stands in for DNS)."""
        return {"PGHOSTADDR": self.address}


class Server:
    """One PostgreSQL server on pgserver's binaries (its data folder, socket folder and log), reached
    through its TLS front on the endpoint; the server itself listens on a free port of the address."""

    def __init__(self, folder: Path, endpoint: Endpoint, certificate: ServerCertificate):
        self.folder = folder
        self.endpoint = endpoint
        self.port = free_port(endpoint.address)
        self.front = TlsFront((endpoint.address, endpoint.port), (endpoint.address, self.port), certificate)
        self.data = folder / "data"
        self.sockets = Path(tempfile.mkdtemp(prefix="rds-"))  # short: a socket path has ~100 bytes
        self.log = folder / "server.log"
        folder.mkdir(parents=True, exist_ok=True)
        _owned_by_server(folder, self.sockets)

    def start(self) -> None:
        options = (
            f"-c listen_addresses={self.endpoint.address} -c port={self.port} "
            f"-c unix_socket_directories={self.sockets}"
        )
        _run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "120", "start")
        self.front.start()

    def stop(self) -> None:
        self.front.stop()
        if (self.data / "postmaster.pid").exists():
            _run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        shutil.rmtree(self.sockets, ignore_errors=True)

    def admin(self, database: str = "postgres") -> psycopg.Connection:
        """A connection as RDS's own superuser, on the unix socket (no client of the deployment can)."""
        return psycopg.connect(
            host=str(self.sockets),
            port=self.port,
            user=RDS_ADMIN,
            dbname=database,
            autocommit=True,
        )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class RdsInstance:
    """The master (`start`) and, once asked, its read replica (`start_replica`; none without its endpoint)."""

    def __init__(
        self,
        folder: Path,
        authority: CertificateAuthority,
        master: Endpoint,
        replica: Endpoint | None,
        master_user: str,
        master_password: str,
        database: str | None,
    ):
        self.folder = folder
        self.authority = authority
        # One certificate names both endpoints; each server is reached by its own name.
        certificate = authority.server("rds", [master.host, *([replica.host] if replica else [])])
        self.master = Server(folder / "master", master, certificate)
        self.replica = Server(folder / "replica", replica, certificate) if replica else None
        self.master_user, self.master_password, self.database = master_user, master_password, database

    def start(self) -> None:
        """initdb, RDS's configuration, then the master user and its database (DBName, if given) as RDS
        creates them."""
        _run(
            "initdb",
            "-D",
            str(self.master.data),
            "-U",
            RDS_ADMIN,
            "--auth-local=trust",
            "--auth-host=reject",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )
        settings = {
            "password_encryption": "scram-sha-256",
            "log_statement": "ddl",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "wal_level": "replica",
            "max_wal_senders": "5",
            "hot_standby": "on",
            # A rehearsal: nothing here has to survive a power cut.
            "fsync": "off",
            "synchronous_commit": "off",
        }
        with (self.master.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = '{value}'\n" for name, value in settings.items())
        # rdsadmin on the socket only (and for replication); everyone else with a SCRAM password
        # through the TLS front (which refuses a connection without TLS, as rds.force_ssl = 1 does).
        (self.master.data / "pg_hba.conf").write_text(
            f"local all {RDS_ADMIN} trust\n"
            f"local replication {RDS_ADMIN} trust\n"
            f"host all {RDS_ADMIN} 0.0.0.0/0 reject\n"
            "host all all 0.0.0.0/0 scram-sha-256\n"
        )
        self.master.start()
        with self.master.admin() as conn:
            conn.execute("CREATE ROLE rds_superuser NOLOGIN")
            conn.execute("GRANT pg_monitor, pg_signal_backend, pg_checkpoint TO rds_superuser")
            verifier = conn.pgconn.encrypt_password(
                self.master_password.encode(), self.master_user.encode(), b"scram-sha-256"
            )
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEROLE CREATEDB IN ROLE rds_superuser PASSWORD {}").format(
                    sql.Identifier(self.master_user), sql.Literal(verifier.decode())
                )
            )
            if self.database:
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(self.database), sql.Identifier(self.master_user)
                    )
                )

    def start_replica(self) -> None:
        """A streaming standby: the master's base backup (with -R: standby.signal and how to reach
        the master), started read-only."""
        _run(
            "pg_basebackup",
            "-h",
            str(self.master.sockets),
            "-p",
            str(self.master.port),
            "-U",
            RDS_ADMIN,
            "-D",
            str(self.replica.data),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        self.replica.start()
        with self.replica.admin() as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], "the replica is no standby"

    def connect(
        self, endpoint: Endpoint, login: str, password: str, database: str, **options
    ) -> psycopg.Connection:
        """As the deployment connects: by the endpoint's name, TLS verified against the CA bundle."""
        settings = {
            "host": endpoint.host,
            "hostaddr": endpoint.address,
            "port": endpoint.port,
            "user": login,
            "password": password,
            "dbname": database,
            "sslmode": "verify-full",
            "sslrootcert": str(self.authority.bundle),
            "autocommit": True,
            "connect_timeout": 10,
        }
        return psycopg.connect(**(settings | options))

    def wait_for_replica(self, seconds: float = 60) -> None:
        """Until the replica has replayed everything the master has written so far."""
        with self.master.admin() as conn:
            written = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + seconds
        with self.replica.admin() as conn:
            while not conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (written,)).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the replica has not replayed the master's WAL up to {written}")
                time.sleep(0.1)

    def stop(self) -> None:
        for server in (self.replica, self.master):
            if server:
                with contextlib.suppress(RuntimeError):
                    server.stop()

    def __enter__(self) -> "RdsInstance":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
