"""A real PostgreSQL server that speaks TLS, and certificate authorities to sign and to distrust its certificate.

pgserver's build has no OpenSSL (`ssl = on` stops it: "SSL is not supported by this build"), so this server is
the machine's Debian PostgreSQL (built --with-openssl), started on loopback TCP in a folder of the test's own.
Like RDS with `rds.force_ssl = 1`, pg_hba.conf has `hostssl` lines only: a plaintext connection is refused.
"""

import datetime
import glob
import os
import shutil
import socket
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class Authority:
    """A self-signed root CA; `pem` is what a client is given as sslrootcert."""

    def __init__(self, folder: Path, name: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pem = folder / f"{name.replace(' ', '-')}.pem"
        self.pem.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def sign_server(self, folder: Path, host_name: str) -> tuple[Path, Path]:
        """(certificate, key) for a server known as `host_name` (its only subject alternative name)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(host_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        cert_path, key_path = folder / "server.crt", folder / "server.key"
        cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)  # PostgreSQL refuses a key others can read
        return cert_path, key_path


@dataclass(frozen=True)
class TlsServer:
    host: str  # the name its certificate carries (resolves to loopback)
    port: int
    user: str
    ca: Path  # the CA that signed its certificate
    wrong_ca: Path  # another CA, that did not

    def conninfo(self, **options: str) -> str:
        parts = {"host": self.host, "port": str(self.port), "dbname": "postgres", "user": self.user} | options
        return " ".join(f"{key}={value}" for key, value in parts.items())


def server_binaries() -> Path:
    """The bin folder of a PostgreSQL built with OpenSSL (Debian's postgresql-NN package)."""
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "postgres").exists():
            return Path(folder)
    raise RuntimeError(
        "no PostgreSQL server with TLS here: apt-get install postgresql (Debian's, built with OpenSSL)"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def tls_postgres(folder: Path):
    """A running TLS-only PostgreSQL whose certificate names `localhost`; stopped and removed on exit."""
    binaries = server_binaries()
    run_as = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: as pgserver does, run as its own user
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        run_as = ensure_user_exists("pgserver").pw_name
    folder.mkdir(parents=True, exist_ok=True)
    if run_as:
        ensure_prefix_permissions(folder)  # it must reach the folder (pytest's are private to root)
    ca = Authority(folder / "ca", "test RDS root CA")
    wrong = Authority(folder / "wrong-ca", "some other CA")
    data = folder / "data"
    data.mkdir()
    if run_as:
        shutil.chown(folder, run_as)
        shutil.chown(data, run_as)
        os.chmod(folder, 0o755)
    subprocess.run(
        [binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
        check=True,
        capture_output=True,
        user=run_as,
    )
    certificate, key = ca.sign_server(data, "localhost")
    if run_as:
        shutil.chown(certificate, run_as)
        shutil.chown(key, run_as)
    (data / "pg_hba.conf").write_text("hostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n")
    port = _free_port()
    settings = [
        "listen_addresses='localhost'",
        f"port={port}",
        f"unix_socket_directories='{data}'",
        "ssl=on",
        "ssl_cert_file='server.crt'",
        "ssl_key_file='server.key'",
    ]
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\n".join(settings) + "\n")
    if run_as:
        shutil.chown(data / "pg_hba.conf", run_as)
    log = folder / "server.log"
    started = subprocess.run(
        [binaries / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start"],
        capture_output=True,
        user=run_as,
    )
    if started.returncode:
        raise RuntimeError(
            f"the TLS PostgreSQL did not start: {log.read_text() if log.exists() else started.stderr}"
        )
    try:
        yield TlsServer("localhost", port, "postgres", ca.pem, wrong.pem)
    finally:
        subprocess.run(
            [binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True, user=run_as
        )
