"""Every database connection of the deployment verifies the server: TLS with the certificate checked against the
RDS CA bundle and the host name (libpq's sslmode=verify-full), tried against PostgreSQL served as RDS serves it
(`tls_server`: TLS only, a certificate one CA signed for its name, SCRAM passwords), with that CA and with another one.

Whether a connection is encrypted is asked of the client (libpq's PQsslInUse): the TLS is spoken by the rehearsal's
front (deploy/rehearsal/tls.py), so the server behind it sees none."""

import datetime
import importlib.util
import re
import ssl
import uuid
from pathlib import Path

import psycopg
import psycopg2
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from dagster_postgres.utils import pg_url_from_config
from psycopg import sql

from covid_pipeline.resources.database import url_from_environment
from covid_pipeline_tests.helpers.templates import ROOT, TEMPLATES, template

BUNDLE = "/opt/covid/rds-ca-bundle.pem"
# The task definitions that connect to the database, by stack.
PIPELINE_IMAGE_TASKS = {
    "WebserverTaskDefinition": "services",
    "DaemonTaskDefinition": "services",
    "RunTaskDefinition": "services",
    "InitDatabaseTaskDefinition": "init",
}


def environment(task: str) -> dict[str, str]:
    resources = template(PIPELINE_IMAGE_TASKS[task])["Resources"]
    (container,) = resources[task]["Properties"]["ContainerDefinitions"]
    return {variable["Name"]: variable["Value"] for variable in container["Environment"]}


def encrypted(connection) -> bool:
    """libpq's PQsslInUse, for psycopg 3 and psycopg2 alike."""
    pgconn = getattr(connection, "pgconn", None)
    return pgconn.ssl_in_use if pgconn is not None else connection.info.ssl_in_use


def dagster_storage() -> dict:
    """deploy/dagster/dagster.yaml's storage (its `${...}` placeholders are the entrypoint's, for lists)."""
    text = re.sub(r"\$\{[A-Z_]+\}", "placeholder", (ROOT / "deploy" / "dagster" / "dagster.yaml").read_text())
    return yaml.safe_load(text)["storage"]["postgres"]


def refused(connect) -> str:
    with pytest.raises((psycopg.OperationalError, psycopg2.OperationalError)) as failure:
        connect().close()
    return str(failure.value)


def test_verify_full_refuses_a_certificate_another_ca_signed_or_for_another_name(tls_server):
    verified = tls_server.conninfo(sslmode="verify-full", sslrootcert=str(tls_server.ca))
    with psycopg.connect(verified) as conn:
        assert encrypted(conn) and conn.execute("SELECT current_user").fetchone() == (tls_server.user,)
    wrong_ca = tls_server.conninfo(sslmode="verify-full", sslrootcert=str(tls_server.wrong_ca))
    assert "certificate verify failed" in refused(lambda: psycopg.connect(wrong_ca))
    # The right CA, but the certificate names "localhost", not the address connected to.
    by_address = tls_server.conninfo(sslmode="verify-full", sslrootcert=str(tls_server.ca), host="127.0.0.1")
    assert 'does not match host name "127.0.0.1"' in refused(lambda: psycopg.connect(by_address))
    # `require` encrypts and accepts any server, whoever signed its certificate for whatever name.
    with psycopg.connect(
        tls_server.conninfo(sslmode="require", sslrootcert="/nonexistent", host="127.0.0.1")
    ):
        pass
    # And, as RDS with rds.force_ssl, plaintext is refused.
    assert "no encryption" in refused(lambda: psycopg.connect(tls_server.conninfo(sslmode="disable")))


def test_every_task_of_the_pipeline_image_verifies_with_the_bundle_the_image_carries():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(rf"^RUN python docker/rds_ca_bundle.py {re.escape(BUNDLE)}$", dockerfile, re.MULTILINE)
    assert "COPY --from=build /opt/covid /opt/covid" in dockerfile
    for task in PIPELINE_IMAGE_TASKS:
        variables = environment(task)
        assert variables["PGSSLMODE"] == "verify-full", task
        assert variables["PGSSLROOTCERT"] == BUNDLE, task
    # Nothing weaker overrides it: no sslmode in a URL, no PGSSLMODE from Parameter Store.
    for path in [*TEMPLATES.glob("*.yaml"), ROOT / "deploy" / "dagster" / "dagster.yaml"]:
        text = path.read_text()
        assert not re.search(r"sslmode=(?!verify-full)", text), path
        assert "/env/PGSSLMODE" not in text, path
    assert "params" not in dagster_storage()["postgres_db"]


@pytest.fixture
def logins(tls_server) -> dict[str, str]:
    """The deployment's database and login for the pipeline and Dagster's storage, on the TLS server (made as
    deploy/init_database.py makes them); each login's password."""
    passwords = {}
    with tls_server.rds.master.admin() as conn:
        for login, database in (("covid_pipeline", "covid"), ("dagster", "dagster")):
            passwords[login] = uuid.uuid4().hex
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(login), sql.Literal(passwords[login])
                )
            )
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(*map(sql.Identifier, (database, login)))
                )
    return passwords


def task_environment(monkeypatch, task: str, ca: Path) -> None:
    """The task definition's libpq variables, with the bundle's path pointing at `ca` (the image's is not here)."""
    for name, value in environment(task).items():
        if name.startswith("PG"):
            monkeypatch.setenv(name, str(ca) if value == BUNDLE else value)


# (the CA the tasks are given, the name they reach the server by, what the connection must answer)
CASES = {
    "the bundle vouches for the server": ("ca", "host", None),
    "another CA signed its certificate": ("wrong_ca", "host", "certificate verify failed"),
    # `require` (or verify-ca) would connect: with a CA file, libpq checks the chain but not the name.
    "its certificate names another host": ("ca", "127.0.0.1", 'does not match host name "127.0.0.1"'),
}


@pytest.mark.parametrize("case", CASES)
def test_the_pipeline_dagster_and_the_init_task_connect_only_to_the_server_the_bundle_vouches_for(
    tls_server, logins, monkeypatch, case
):
    ca_name, host_name, refusal = CASES[case]
    ca = getattr(tls_server, ca_name)
    host = tls_server.host if host_name == "host" else host_name
    # The pipeline (run task): COVID_DATABASE_URL as the database stack writes it, the password apart.
    task_environment(monkeypatch, "RunTaskDefinition", ca)
    (parameter,) = [
        resource["Properties"]
        for name, resource in template("database")["Resources"].items()
        if name == "WarehouseUrlParameter"
    ]
    url = parameter["Value"]["Fn::Sub"].replace("${Master.Endpoint.Address}", host)
    url = url.replace("${Master.Endpoint.Port}", str(tls_server.port))
    monkeypatch.setenv("COVID_DATABASE_URL", url)
    monkeypatch.setenv("COVID_DATABASE_PASSWORD", logins["covid_pipeline"])
    pipeline = lambda: psycopg.connect(url_from_environment())  # noqa: E731 (it migrates the schema first)
    # Dagster's storage (webserver, daemon, run workers): the URL dagster-postgres builds from dagster.yaml.
    task_environment(monkeypatch, "DaemonTaskDefinition", ca)
    config = dagster_storage()
    given = {"DAGSTER_PG_HOST": host, "DAGSTER_PG_PORT": str(tls_server.port), "DAGSTER_PG_DB": "dagster"}
    given |= {"DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": logins["dagster"]}
    db = {
        key: given[value["env"]] if isinstance(value, dict) else value
        for key, value in config["postgres_db"].items()
    }
    dagster_url = pg_url_from_config({"postgres_db": db}).replace("postgresql+psycopg2://", "postgresql://")
    dagster = lambda: psycopg2.connect(dagster_url)  # noqa: E731
    # The init task: libpq's own variables only.
    task_environment(monkeypatch, "InitDatabaseTaskDefinition", ca)
    for name, value in {
        "PGHOST": host,
        "PGPORT": str(tls_server.port),
        "PGUSER": tls_server.user,
        "PGPASSWORD": tls_server.password,
    }.items():
        monkeypatch.setenv(name, value)
    init = lambda: psycopg.connect("")  # noqa: E731
    for who, connect in (("pipeline", pipeline), ("dagster", dagster), ("init task", init)):
        if refusal is None:
            connection = connect()
            assert encrypted(connection), who
            connection.close()
        else:
            assert refusal in refused(connect), who


def rds_ca_bundle():
    spec = importlib.util.spec_from_file_location("rds_ca_bundle", ROOT / "docker" / "rds_ca_bundle.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def certificate_pem(organization: str, common_name: str, ca: bool = True) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_the_image_build_takes_only_a_bundle_of_amazon_rds_cas():
    check = rds_ca_bundle().check
    amazon = [
        certificate_pem("Amazon Web Services, Inc.", f"Amazon RDS {r} Root CA RSA2048 G1")
        for r in ("eu", "us")
    ]
    assert check("".join(amazon)) == 2
    for bad in (
        "",
        "<html>Access denied</html>",
        amazon[0] + certificate_pem("Evil Ltd", "Amazon RDS eu Root CA RSA2048 G1"),
        amazon[0] + certificate_pem("Amazon Web Services, Inc.", "Amazon RDS eu", ca=False),
        amazon[0][:200],
    ):
        with pytest.raises((ValueError, ssl.SSLError)):
            check(bad)
