"""The embedded PostgreSQL server's life, as docs/operations.md states it: started when a process of the pipeline
needs it, stopped when the last of those processes ends, unless other programs are connected to it then."""

import subprocess
import sys

import psycopg

from covid_pipeline.resources.embedded_postgres import stop_server

# A process of the pipeline using the server: it asks for it, says its URL, and holds it until told to end.
USER = """
import sys
from covid_pipeline.resources.embedded_postgres import embedded_server_url
print(embedded_server_url(sys.argv[1]), flush=True)
sys.stdin.readline()
"""


def pipeline_process(data_dir) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(data_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    return process, process.stdout.readline().strip()


def end(process: subprocess.Popen) -> None:
    process.communicate("\n", timeout=120)
    assert process.returncode == 0


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_the_server_stops_when_the_last_process_using_it_ends(tmp_path):
    data = tmp_path / "pgdata"
    first, url = pipeline_process(data)
    second, again = pipeline_process(data)
    try:
        assert again == url and answers(url)
        end(first)
        assert answers(url)  # the second process still uses it
        end(second)
        assert not answers(url)
        assert (data / "PG_VERSION").exists()  # its data stays
    finally:
        for process in (first, second):
            if process.poll() is None:
                end(process)
        stop_server(data)


def test_a_program_connected_when_the_last_process_ends_keeps_the_server_up(tmp_path):
    data = tmp_path / "pgdata"
    process, url = pipeline_process(data)
    try:
        with psycopg.connect(url, autocommit=True) as notebook:
            end(process)
            assert notebook.execute("SELECT 1").fetchone() == (1,)
        assert answers(url)
        assert stop_server(data).startswith("stopped the embedded server")  # `covid-pipeline stop`
        assert not answers(url)
    finally:
        if process.poll() is None:
            end(process)
        stop_server(data)
