"""Downloads and connections as the README promises them: streamed to disk while hashed, resumes carry
If-Range, a publication that changes between two attempts is downloaded again whole, file:// URLs, and
COVID_DATABASE_PASSWORD."""

import hashlib
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from covid_pipeline.resources.sources import SourcesResource
from covid_pipeline_tests.helpers.registry import row, write_registry
from covid_pipeline_tests.helpers.warehouse import drop_database, new_database


def registry_bytes(tmp_path, n: int, **changes) -> bytes:
    rows = [row(id_evento_caso=str(i), **changes) for i in range(1, n + 1)]
    return write_registry(tmp_path / f"registry-{n}.zip", rows).read_bytes()


def gets(http_server) -> list[dict]:
    return [headers for method, _, headers in http_server.requests if method == "GET"]


def etag_of(data: bytes) -> str:
    return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'  # as the loopback server makes it


def test_a_resume_carries_if_range_with_the_publication_s_etag(http_server, tmp_path):
    data = registry_bytes(tmp_path, 3000)
    url = http_server.publish("Covid19Casos.zip", data)
    http_server.cut_after["Covid19Casos.zip"] = (len(data) // 3, 2)
    fetched = SourcesResource(cases_url=url, backoff_seconds=0.01).fetch("cases", tmp_path)
    assert fetched.path.read_bytes() == data
    assert fetched.sha256 == hashlib.sha256(data).hexdigest() and fetched.size == len(data)
    # the server refuses (412) a Range without If-Range: the resumes got through because they carried it
    assert [(h.get("Range"), h.get("If-Range")) for h in gets(http_server)] == [
        (None, None),
        (f"bytes={len(data) // 3}-", etag_of(data)),
        (f"bytes={2 * (len(data) // 3)}-", etag_of(data)),
    ]


def test_a_publication_that_changes_between_two_attempts_is_downloaded_again_whole(http_server, tmp_path):
    before = registry_bytes(tmp_path, 3000)
    after = registry_bytes(tmp_path, 3500, sexo="F")
    url = http_server.publish("Covid19Casos.zip", before)
    http_server.cut_after["Covid19Casos.zip"] = (len(before) // 2, 1)
    http_server.republish_after_cut["Covid19Casos.zip"] = after
    fetched = SourcesResource(cases_url=url, backoff_seconds=0.01).fetch("cases", tmp_path)
    # not the first half of one publication and the rest of the other
    assert fetched.path.read_bytes() == after
    assert (fetched.sha256, fetched.size, fetched.etag) == (
        hashlib.sha256(after).hexdigest(),
        len(after),
        etag_of(after),
    )
    assert [h.get("If-Range") for h in gets(http_server)] == [None, etag_of(before)]


def test_file_urls_are_read_like_paths(tmp_path):
    source = tmp_path / "carpeta con espacios" / "Año 2020" / "Covid19Casos.zip"
    data = write_registry(source, [row(id_evento_caso=str(i)) for i in range(1, 50)]).read_bytes()
    sources = SourcesResource(
        cases_url=source.as_uri()
    )  # file:///.../carpeta%20con%20espacios/A%C3%B1o%202020/...
    fetched = sources.fetch("cases", tmp_path)
    assert fetched.path.read_bytes() == data and fetched.sha256 == hashlib.sha256(data).hexdigest()
    assert fetched.extension == ".zip"
    assert sources.probe("cases").sha256 == hashlib.sha256(data).hexdigest()


# A download as the pipeline makes it, in a process of its own (the loopback server's thread would count too),
# printing the peak of what Python allocated while fetching.
FETCH = """
import sys, tracemalloc
from pathlib import Path
from covid_pipeline.resources.sources import SourcesResource
sources = SourcesResource(cases_url=sys.argv[1])
tracemalloc.start()
fetched = sources.fetch("cases", Path(sys.argv[2]))
print(fetched.sha256, tracemalloc.get_traced_memory()[1])
"""


def test_a_download_streams_to_disk_while_hashed_never_whole_in_memory(http_server, tmp_path):
    big = tmp_path / "Covid19Casos.zip"
    with zipfile.ZipFile(big, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("Covid19Casos.csv", os.urandom(64 * 2**20))  # 64 MB that no compression shrinks
    data = big.read_bytes()
    for url in (http_server.publish("Covid19Casos.zip", data), str(big), big.as_uri()):
        folder = tmp_path / f"fetched-{len(list(tmp_path.iterdir()))}"
        folder.mkdir()
        printed = subprocess.run(
            [sys.executable, "-c", FETCH, url, str(folder)], capture_output=True, text=True, timeout=300
        )
        assert printed.returncode == 0, printed.stderr[-3000:]
        sha256, peak = printed.stdout.split()
        assert sha256 == hashlib.sha256(data).hexdigest()
        assert int(peak) < 8 * 2**20, (
            f"{url}: {int(peak) / 2**20:.1f} MB held while fetching {len(data) / 2**20:.0f} MB"
        )


ROLE, PASSWORD = "covid_password_test", "n0t in the URL: @/?&="


@pytest.fixture
def password_only_url(pg_server_url):
    """The URL of a fresh database as a login role the server lets in only with its password (scram), whatever
    trust the rest of the server has; the password is not in the URL."""
    url = new_database(pg_server_url)
    with psycopg.connect(pg_server_url, autocommit=True) as admin:
        hba = admin.execute("SHOW hba_file").fetchone()[0]
        admin.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(ROLE), sql.Literal(PASSWORD)
            )
        )
        original = Path(hba).read_text(encoding="utf-8")
        Path(hba).write_text(
            f"local all {ROLE} scram-sha-256\nhost all {ROLE} 127.0.0.1/32 scram-sha-256\n" + original,
            encoding="utf-8",
        )
        admin.execute("SELECT pg_reload_conf()")
    try:
        yield psycopg.conninfo.make_conninfo(url, user=ROLE)
    finally:
        drop_database(pg_server_url, url)
        with psycopg.connect(pg_server_url, autocommit=True) as admin:
            Path(hba).write_text(original, encoding="utf-8")
            admin.execute("SELECT pg_reload_conf()")
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(ROLE)))


def test_covid_database_password_is_added_to_the_url(password_only_url):
    url = password_only_url
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(url).close()
    # the deployment's way: the URL and the password in two env vars, read by the definitions Dagster loads
    code = textwrap.dedent(
        """
        import psycopg
        from dagster import build_resources
        from covid_pipeline.definitions import defs

        with build_resources({"warehouse": defs.resources["warehouse"]}) as resources:
            with psycopg.connect(resources.warehouse.url) as conn:
                print(conn.execute("SELECT current_user, to_regclass('covid.loads') IS NOT NULL").fetchone())
        """
    )
    env = {**os.environ, "COVID_DATABASE_URL": url, "COVID_DATABASE_PASSWORD": PASSWORD}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == f"('{ROLE}', True)"  # connected, and migrated the warehouse
