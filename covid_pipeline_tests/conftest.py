"""Real components for the tests: an embedded PostgreSQL, moto's S3/ECS/SSM server, a loopback HTTP server.

- `pg_server_url`: one embedded PostgreSQL server for the whole session.
- `database_url`: a fresh, empty database on it for each test (migrations not yet run).
- `moto_endpoint`: moto's standalone server over HTTP; sets AWS_ENDPOINT_URL and fake credentials.
- `tls_server`: PostgreSQL as RDS serves it (TLS only, its certificate signed by a CA of the session for the
  name `localhost`, SCRAM passwords, a master that is no superuser): the rehearsal's RDS, `deploy/rehearsal/rds.py`.
- `http_server`: serves a folder over loopback HTTP (with Range support), see `helpers.http`.
- `sample_warehouse` (shared, read-only) and `sample_copy` (the test's own): the bundled sample loaded by the
  graph, both copies of one session-wide load (`sample_template`).
- `short_warehouse`: the test's own copy of a warehouse and raw store that hold a short registry (300 real rows)
  loaded up to the aggregates, see `helpers.short_registry`.
"""

import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

# The tests cut database connections on purpose: retry after a fraction of a second, not 15 s (set before any
# covid_pipeline module reads it at import; subprocesses inherit it).
os.environ.setdefault("COVID_RETRY_DELAY_SECONDS", "0.1")
# The tests start many Python processes (the CLI, `dev`, the benchmarks): let them cache the project's bytecode as
# a user's Python does, where an image sets PYTHONDONTWRITEBYTECODE (else each one compiles the package again).
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

import pytest

from covid_pipeline.resources.embedded_postgres import start_server

sys.dont_write_bytecode = False  # and this process's own imports from here on (see above)

# Real registry and georef files (provenance in its README), kept with the tests so they run anywhere;
# test_real_data.py checks them against the team's shared copy when that is beside the checkout.
REAL_DATA = Path(__file__).resolve().parent / "data" / "real"
SHARED_REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def pytest_collection_modifyitems(items):
    """The slow tests first: the two workers share them from the start, instead of one worker running the
    last long test alone while the other idles."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory) -> str:
    server = start_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture
def database_url(pg_server_url) -> str:
    from covid_pipeline_tests.helpers.warehouse import drop_database, new_database

    url = new_database(pg_server_url)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture
def warehouse_url(database_url) -> str:
    """A fresh database with the warehouse's migrations run (covid schema, loads, rejects)."""
    from covid_pipeline.resources.database import migrate

    migrate(database_url)
    return database_url


@pytest.fixture(scope="session")
def moto_endpoint() -> str:
    from moto.server import ThreadedMotoServer

    from covid_pipeline_tests.helpers.moto_cloudformation import make_strict

    make_strict()  # refuses what AWS refuses where the deployment depends on it (see the helper)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing",
        AWS_DEFAULT_REGION="us-east-1",
    )
    yield endpoint
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    server.stop()


_AWS_ENV = (
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
)


@dataclass(frozen=True)
class TlsServer:
    host: str  # the name its certificate carries (`localhost`: it resolves here without help)
    port: int
    user: str  # the master user: LOGIN CREATEROLE CREATEDB, no superuser
    password: str
    ca: Path  # the CA that signed its certificate
    wrong_ca: Path  # another CA, that did not
    # deploy.rehearsal.rds.RdsInstance: `rds.master.admin()` sets things up as RDS's own superuser
    rds: object

    def conninfo(self, **options: str) -> str:
        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": "postgres",
            "user": self.user,
            "password": self.password,
        }
        return " ".join(f"{key}={value}" for key, value in (parts | options).items())


@pytest.fixture(scope="session")
def tls_server(tmp_path_factory):
    """The one TLS stand-in of the suite and the rehearsal: pgserver's PostgreSQL (built without OpenSSL) behind
    the rehearsal's TLS front, which refuses plaintext as RDS with rds.force_ssl does."""
    from deploy.rehearsal.rds import Endpoint, RdsInstance, free_port
    from deploy.rehearsal.tls import CertificateAuthority

    folder = tmp_path_factory.mktemp("tls-server")
    authority = CertificateAuthority(folder / "ca", "test RDS root CA")
    wrong = CertificateAuthority(folder / "wrong-ca", "some other CA")
    endpoint = Endpoint("localhost", "127.0.0.1", free_port("127.0.0.1"))
    password = uuid.uuid4().hex
    with RdsInstance(folder / "rds", authority, endpoint, None, "covid_admin", password, None) as rds:
        rds.start()
        yield TlsServer(
            endpoint.host, endpoint.port, "covid_admin", password, authority.bundle, wrong.bundle, rds
        )


@pytest.fixture
def s3_bucket(moto_endpoint) -> str:
    import boto3

    name = f"bucket-{uuid.uuid4().hex[:10]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def http_server(tmp_path):
    from covid_pipeline_tests.helpers.http import LoopbackServer

    with LoopbackServer(tmp_path / "www") as server:
        yield server


@pytest.fixture
def covid_home(tmp_path, monkeypatch) -> Path:
    """Point local state ($COVID_HOME) at a temporary folder."""
    home = tmp_path / "covid-home"
    monkeypatch.setenv("COVID_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def sample_run(pg_server_url, tmp_path_factory):
    """The run of every asset but the report on the bundled sample, into a database of its own (`.url`); its
    result (`.result`) for the tests that read the run's metadata."""
    from covid_pipeline_tests.helpers.warehouse import new_database, run_graph

    url = new_database(pg_server_url)
    return SimpleNamespace(url=url, result=run_graph(url, tmp_path_factory.mktemp("sample")))


@pytest.fixture(scope="session")
def sample_template(sample_run) -> str:
    """The sample run's database. Never connect to it: it is the template the fixtures below copy
    (CREATE DATABASE ... TEMPLATE, a file copy: far cheaper than a run)."""
    return sample_run.url


@pytest.fixture(scope="session")
def sample_warehouse(pg_server_url, sample_template) -> str:
    """The bundled sample loaded by the whole graph (but the report); shared by the tests: read it, don't change it."""
    from covid_pipeline_tests.helpers.warehouse import new_database

    return new_database(pg_server_url, template=sample_template)


@pytest.fixture
def sample_copy(pg_server_url, sample_template) -> str:
    """A copy of the loaded sample of the test's own, to change or to load again."""
    from covid_pipeline_tests.helpers.warehouse import drop_database, new_database

    url = new_database(pg_server_url, template=sample_template)
    yield url
    drop_database(pg_server_url, url)


@pytest.fixture(scope="session")
def short_template(pg_server_url, tmp_path_factory):
    """(database url, folder holding its raw store) after the graph up to the aggregates on the short registry.
    Never connect to the database: `short_warehouse` copies it."""
    from covid_pipeline_tests.helpers.short_registry import UP_TO_AGGREGATES, base_lines, registry_zip
    from covid_pipeline_tests.helpers.warehouse import new_database, run_graph

    folder = tmp_path_factory.mktemp("short")
    url = new_database(pg_server_url)
    run_graph(url, folder, cases=registry_zip(folder, base_lines()), selection=UP_TO_AGGREGATES)
    return url, folder


@pytest.fixture
def short_warehouse(short_template, pg_server_url, tmp_path):
    """(database url, folder): a copy of `short_template`'s database and raw store, the test's own."""
    import shutil

    from covid_pipeline_tests.helpers.warehouse import drop_database, new_database

    template, folder = short_template
    url = new_database(pg_server_url, template=template)
    shutil.copytree(folder / "raw", tmp_path / "raw")
    yield url, tmp_path
    drop_database(pg_server_url, url)
