"""Faults of the machine (assets/failures.py): a full disk, a read-only, missing or misplaced folder end the step
with one line naming the path and the setting it comes from, and are not retried; a server start that failed
does not leave a half-made handle that fails every later attempt with a bare AssertionError."""

import errno
import os
import tempfile

import pytest
from dagster import DagsterEventType

from covid_pipeline.assets.failures import environment_fault, failures_for_people
from covid_pipeline.cli import sample_sources
from covid_pipeline.resources.embedded_postgres import start_server
from covid_pipeline_tests.helpers.filesystems import small_disk
from covid_pipeline_tests.helpers.warehouse import failure_of, run_graph

SAMPLE = sample_sources()


def raised(action) -> OSError:
    try:
        action()
    except OSError as exc:
        return exc
    raise AssertionError("no OSError")


def test_a_read_only_covid_home_fails_the_load_once_naming_it(tmp_path, monkeypatch):
    with small_disk(tmp_path / "home", 20) as disk:
        monkeypatch.setenv("COVID_HOME", str(disk.path))
        disk.read_only()
        result = run_graph(
            "",  # the embedded server, in $COVID_HOME/pgdata
            tmp_path,
            selection=["raw_csv_s3", "cleaned_cases"],
            raise_on_error=False,
        )
    step, message = failure_of(result)
    assert step == "cleaned_cases"
    assert message.startswith(
        f"{disk.path / 'pgdata'} is on a read-only file system (COVID_HOME={disk.path}): "
        "point COVID_HOME at a writable folder."
    ), message
    assert "covid.cases was left as it was" in message
    assert not [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]


def test_a_failed_server_start_leaves_no_half_made_handle_behind(tmp_path):
    """pgserver keeps a handle per data folder from the start of its constructor: after a failed start the next
    attempt got that handle back, and its first use raised a bare AssertionError."""
    with small_disk(tmp_path / "home", 80) as disk:
        data = disk.path / "pgdata"
        start_server(data).cleanup()  # initialised, then stopped
        disk.read_only()
        first = raised(lambda: start_server(data, attempts=1))
        second = raised(lambda: start_server(data, attempts=1).get_uri())
        disk.read_only(False)
        server = start_server(data)  # and once the folder is writable again, it starts
        try:
            assert server.get_uri()
        finally:
            server.cleanup()
    assert first.errno == second.errno == errno.EROFS


def test_a_full_disk_names_the_folder_the_free_space_and_the_setting(tmp_path, monkeypatch):
    with small_disk(tmp_path / "store", 1) as disk:
        monkeypatch.setenv("COVID_RAW_STORE", str(disk.path))
        big = disk.path / "cases" / "x.zip"
        big.parent.mkdir()
        fault = environment_fault(raised(lambda: big.write_bytes(b"\0" * (2 << 20))))
    # a write carries no file name: the full one of the pipeline's folders is named
    assert fault.startswith(
        f"The disk holding {disk.path} is full (0 bytes free of 1.0 MB) (COVID_RAW_STORE={disk.path})"
    )
    assert fault.endswith("free space there, or point COVID_RAW_STORE elsewhere. (No space left on device)")


def test_a_full_disk_met_while_writing_an_open_file_names_the_full_folder(tmp_path, monkeypatch):
    """A write to an open file carries no file name, and a temporary file gives its space back as it is
    removed: the message lists the pipeline's folders with their free space (here the temporary folder the
    load spools its rejects to, full while the file existed)."""
    with small_disk(tmp_path / "tmp", 1) as disk:
        monkeypatch.setenv("TMPDIR", str(disk.path))
        monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again

        def spool():
            with tempfile.TemporaryFile() as handle:
                handle.write(b"\0" * (2 << 20))
                handle.flush()

        exc = raised(spool)
        assert exc.filename is None
        fault = environment_fault(exc)
    assert fault.startswith("A disk filled up while the step wrote a file (No space left on device).")
    assert f"TMPDIR={disk.path} (1.0 MB free of 1.0 MB)" in fault


def test_a_store_pointing_at_a_file_or_nowhere_is_named(tmp_path, monkeypatch):
    not_a_folder = tmp_path / "raw.zip"
    not_a_folder.write_bytes(b"PK")
    monkeypatch.setenv("COVID_RAW_STORE", str(not_a_folder))
    fault = environment_fault(raised(lambda: (not_a_folder / "cases").mkdir(parents=True)))
    assert fault.startswith(
        f"{not_a_folder / 'cases'}: part of this path is a file, not a folder (COVID_RAW_STORE={not_a_folder}): "
        "point COVID_RAW_STORE at a folder (not at a file)."
    )
    monkeypatch.setenv("COVID_HOME", str(tmp_path / "home"))
    missing = tmp_path / "home" / "reports" / "latest.html"
    fault = environment_fault(raised(lambda: missing.read_bytes()))
    assert fault.startswith(f"{missing} does not exist (COVID_REPORTS_STORE={tmp_path / 'home' / 'reports'})")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: no permission fault to meet")
def test_a_folder_without_permission_is_named(tmp_path, monkeypatch):
    locked = tmp_path / "home"
    locked.mkdir(mode=0o500)
    monkeypatch.setenv("COVID_HOME", str(locked))
    fault = environment_fault(raised(lambda: (locked / "pgdata").mkdir()))
    assert fault.startswith(f"No permission to use {locked / 'pgdata'} (the pipeline runs as ")


def test_other_os_errors_keep_their_retry():
    assert environment_fault(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")) is None
    assert environment_fault(TimeoutError("timed out")) is None
    with pytest.raises(ConnectionResetError), failures_for_people("kept"):
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")


def test_the_stores_own_words_are_kept():
    """An OSError raised by the pipeline itself (no errno, no file name) is already a sentence for a person."""
    message = "/x/raw/cases/abc.zip is not in the raw store; materialize raw_csv_s3 first"
    assert environment_fault(FileNotFoundError(message)) == message
