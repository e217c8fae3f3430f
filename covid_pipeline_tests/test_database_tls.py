"""Every database connection of the deployment verifies the server: TLS with the certificate checked against the
RDS CA bundle and the host name (libpq's sslmode=verify-full), tried against a real TLS-only PostgreSQL whose
certificate one CA signed, with that CA and with another one."""

import datetime
import importlib.util
import re
import ssl
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
PIPELINE_IMAGE_TASKS = [
    "WebserverTaskDefinition",
    "DaemonTaskDefinition",
    "RunTaskDefinition",
    "InitDatabaseTaskDefinition",
]


def environment(task: str) -> dict[str, str]:
    (container,) = template("services")["Resources"][task]["Properties"]["ContainerDefinitions"]
    return {variable["Name"]: variable["Value"] for variable in container["Environment"]}


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
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)
    wrong_ca = tls_server.conninfo(sslmode="verify-full", sslrootcert=str(tls_server.wrong_ca))
    assert "certificate verify failed" in refused(lambda: psycopg.connect(wrong_ca))
    # The right CA, but the certificate names "localhost", not the address connected to.
    by_address = tls_server.conninfo(sslmode="verify-full", sslrootcert=str(tls_server.ca), host="127.0.0.1")
    assert 'does not match host name "127.0.0.1"' in refused(lambda: psycopg.connect(by_address))
    # What the deployment had: `require` encrypts and accepts any server, whoever signed it.
    with psycopg.connect(tls_server.conninfo(sslmode="require", sslrootcert="/nonexistent")):
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
def logins(tls_server):
    """The deployment's database and login for the pipeline and Dagster's storage, on the TLS server."""
    admin = tls_server.conninfo(sslmode="verify-full", sslrootcert=str(tls_server.ca))
    with psycopg.connect(admin, autocommit=True) as conn:
        for login, database in (("covid_pipeline", "covid"), ("dagster", "dagster")):
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(*map(sql.Identifier, (database, login)))
                )


def task_environment(monkeypatch, task: str, ca: Path) -> None:
    """The task definition's libpq variables, with the bundle's path pointing at `ca` (the image's is not here)."""
    for name, value in environment(task).items():
        if name.startswith("PG"):
            monkeypatch.setenv(name, str(ca) if value == BUNDLE else value)


@pytest.mark.usefixtures("logins")
@pytest.mark.parametrize("ca", ["ca", "wrong_ca"])
def test_the_pipeline_dagster_and_the_init_task_connect_only_to_the_server_the_bundle_vouches_for(
    tls_server, monkeypatch, ca
):
    trusted = ca == "ca"
    # The pipeline (run task): COVID_DATABASE_URL as the database stack writes it, the password apart.
    task_environment(monkeypatch, "RunTaskDefinition", getattr(tls_server, ca))
    (parameter,) = [
        resource["Properties"]
        for name, resource in template("database")["Resources"].items()
        if name == "WarehouseUrlParameter"
    ]
    url = parameter["Value"]["Fn::Sub"].replace("${Master.Endpoint.Address}", tls_server.host)
    url = url.replace("${Master.Endpoint.Port}", str(tls_server.port))
    monkeypatch.setenv("COVID_DATABASE_URL", url)
    monkeypatch.setenv("COVID_DATABASE_PASSWORD", "not checked: trust auth")
    pipeline = lambda: psycopg.connect(url_from_environment())  # noqa: E731 (it migrates the schema first)
    # Dagster's storage (webserver, daemon, run workers): the URL dagster-postgres builds from dagster.yaml.
    task_environment(monkeypatch, "DaemonTaskDefinition", getattr(tls_server, ca))
    config = dagster_storage()
    given = {"DAGSTER_PG_HOST": tls_server.host, "DAGSTER_PG_PORT": str(tls_server.port)}
    given |= {"DAGSTER_PG_DB": "dagster", "DAGSTER_PG_USERNAME": "dagster", "DAGSTER_PG_PASSWORD": "x"}
    db = {
        key: given[value["env"]] if isinstance(value, dict) else value
        for key, value in config["postgres_db"].items()
    }
    dagster_url = pg_url_from_config({"postgres_db": db}).replace("postgresql+psycopg2://", "postgresql://")
    dagster = lambda: psycopg2.connect(dagster_url)  # noqa: E731
    # The init task: libpq's own variables only.
    task_environment(monkeypatch, "InitDatabaseTaskDefinition", getattr(tls_server, ca))
    for name, value in {
        "PGHOST": tls_server.host,
        "PGPORT": str(tls_server.port),
        "PGUSER": "postgres",
    }.items():
        monkeypatch.setenv(name, value)
    init = lambda: psycopg.connect("")  # noqa: E731
    for who, connect in (("pipeline", pipeline), ("dagster", dagster), ("init task", init)):
        if trusted:
            connection = connect()
            cursor = connection.cursor()
            cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cursor.fetchone() == (True,), who
            connection.close()
        else:
            assert "certificate verify failed" in refused(connect), who


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
