"""RDS's TLS, for the rehearsal and the test suite: a certificate authority standing in for the RDS CA
bundle, and the TLS front that speaks TLS for a PostgreSQL built without it.

The deployment's connections verify the server (libpq's `sslmode=verify-full` with `sslrootcert` the
RDS bundle): the certificate must chain to the bundle and name the host connected to. The servers
present a certificate this CA signed for their endpoint's name, as RDS's certificate carries the
instance's endpoint ("the SSL certificate includes the DB instance endpoint as the Common Name",
https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/PostgreSQL.Concepts.General.SSL.html), and the
processes get this CA where the task definitions point at the bundle.
"""

import asyncio
import datetime
import ipaddress
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServerCertificate:
    certificate: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


class CertificateAuthority:
    """A self-signed root (`bundle`: its PEM) that signs server certificates."""

    def __init__(self, folder: Path, name: str = "rehearsal RDS root CA"):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.bundle = _pem(
            folder / "ca-bundle.pem", self._certificate.public_bytes(serialization.Encoding.PEM)
        )

    def server(self, name: str, hosts: list[str]) -> ServerCertificate:
        """A certificate for `hosts` (DNS names or IP addresses), with its key (mode 0600)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(hosts[0]))
            .issuer_name(self._certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        return ServerCertificate(
            certificate=_pem(
                self.folder / f"{name}.crt", certificate.public_bytes(serialization.Encoding.PEM)
            ),
            key=_pem(
                self.folder / f"{name}.key",
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption(),
                ),
                mode=0o600,
            ),
        )


# PostgreSQL's first messages (https://www.postgresql.org/docs/16/protocol-message-formats.html)
SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST, PROTOCOL_3 = 80877103, 80877104, 80877102, 196608


def _error(message: str) -> bytes:
    """An ErrorResponse, as the server sends it before closing the connection."""
    fields = b"".join(
        code + text.encode() + b"\0"
        for code, text in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", "28000"), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


class TlsFront:
    """TLS for a server built without it: the endpoint's address and port, in front of the server.

    pgserver's PostgreSQL is built without OpenSSL ("SSL is not supported by this build"), so the
    TLS that RDS's server speaks is spoken here: a client's SSLRequest is answered 'S', the
    connection becomes TLS (1.2 or later) with `certificate`, and what follows (startup, SCRAM,
    queries) goes to the server unchanged. A client that starts without TLS is refused as RDS
    refuses it with rds.force_ssl = 1, which leaves pg_hba.conf `hostssl` lines only (the RDS page
    above, "Requiring an SSL connection"): PostgreSQL's FATAL "no pg_hba.conf entry for host ...,
    no encryption" (src/backend/libpq/auth.c, ClientAuthentication), sent before any password is
    asked. A CancelRequest, which libpq may send without TLS and which the server answers before
    any authentication, is passed on as it is.
    """

    def __init__(self, listen: tuple[str, int], server: tuple[str, int], certificate: ServerCertificate):
        self.listen, self.server = listen, server
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.load_cert_chain(certificate.certificate, certificate.key)
        self._loop = None
        self._thread = None

    def start(self) -> None:
        started = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, *self.listen, reuse_address=True)
            )
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name=f"tls-front-{self.listen[0]}", daemon=True)
        self._thread.start()
        if not started.wait(30):
            raise RuntimeError(f"the TLS front on {self.listen} did not start")

    def stop(self) -> None:
        """Closes the listener and every connection still open, then the loop."""
        if not self._loop:
            return

        async def shutdown() -> None:
            self._server.close()
            open_connections = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in open_connections:
                task.cancel()
            await asyncio.gather(*open_connections, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()
        self._loop = None

    async def _connection(self, reader, writer) -> None:
        try:
            length = int.from_bytes(await reader.readexactly(4), "big")
            packet = await reader.readexactly(length - 4)
            code = int.from_bytes(packet[:4], "big")
            if code == GSSENC_REQUEST:  # no Kerberos here: libpq then asks for TLS
                writer.write(b"N")
                length = int.from_bytes(await reader.readexactly(4), "big")
                packet = await reader.readexactly(length - 4)
                code = int.from_bytes(packet[:4], "big")
            first = b""
            if code == SSL_REQUEST:
                writer.write(b"S")
                await writer.start_tls(self.context)
            elif code == CANCEL_REQUEST:
                first = length.to_bytes(4, "big") + packet
            else:
                pairs = packet[4:].split(b"\0")
                options = dict(zip(pairs[::2], pairs[1::2], strict=False))
                writer.write(
                    _error(
                        f'no pg_hba.conf entry for host "{writer.get_extra_info("peername")[0]}", '
                        f'user "{options.get(b"user", b"").decode()}", '
                        f'database "{options.get(b"database", b"").decode()}", no encryption'
                    )
                )
                await writer.drain()
                return
            server_reader, server_writer = await asyncio.open_connection(*self.server)
            server_writer.write(first)

            async def pump(source, target) -> None:
                try:
                    while data := await source.read(65536):
                        target.write(data)
                        await target.drain()
                finally:
                    target.close()

            await asyncio.gather(
                pump(reader, server_writer), pump(server_reader, writer), return_exceptions=True
            )
        except (asyncio.IncompleteReadError, asyncio.CancelledError, OSError):
            pass  # the client or the server went away, or the front stops: the connection ends
        finally:
            writer.close()
