"""The raw store's faults end in one line naming the path and the setting, without a retry, and leave nothing
half-written: a damaged manifest.json, a raw file deleted from the store, a store setting naming a file, a
read-only COVID_HOME, a full disk. The next whole run recovers by itself where it can (it writes the manifest
anew and fetches a deleted file again).

Real faults: the disk is a small tmpfs and the read-only COVID_HOME a read-only mount when the tests run as
root (root writes through file modes); as another user, a folder without write permission.
"""

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.helpers.warehouse import fingerprint, metadata_of, refusal, run_graph

SAMPLE = sample_sources()
SOURCES = [SAMPLE["COVID_CASES_URL"], SAMPLE["COVID_PROVINCES_URL"], SAMPLE["COVID_DEPARTMENTS_URL"]]


@pytest.fixture
def stored(sample_copy, tmp_path):
    """(database url, raw store folder) after a good run on the bundled sample."""
    raw = tmp_path / "raw"
    assert run_graph(sample_copy, tmp_path, raw_store=raw, raise_on_error=False).success
    return sample_copy, raw


def partial_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".partial")]


# --- manifest.json -------------------------------------------------------------------------------------------


DAMAGED_MANIFESTS = {
    "cut in half": lambda good: good[: len(good) // 2],
    "not JSON at all": lambda good: b"\x00\x00\x00\x00",
    "a JSON list": lambda good: b"[]",
    "an entry without its key": lambda good: json.dumps(
        {k: {f: v for f, v in e.items() if f != "key"} for k, e in json.loads(good).items()}
    ).encode(),
    "a key that is not the file's hash": lambda good: good.replace(b'"key": "cases/', b'"key": "cases/x', 1),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED_MANIFESTS))
def test_a_damaged_manifest_refuses_the_steps_that_read_it_naming_the_file_and_the_cure(
    stored, tmp_path, damage
):
    url, raw = stored
    manifest = raw / "manifest.json"
    manifest.write_bytes(DAMAGED_MANIFESTS[damage](manifest.read_bytes()))
    before = fingerprint(url, "covid.cases")
    message = refusal(
        run_graph(url, tmp_path, raw_store=raw, selection=["cleaned_cases"], raise_on_error=False),
        "cleaned_cases",
    )
    assert message.startswith(f"{manifest} is damaged"), message
    assert "materialize raw_csv_s3 again" in message and "covid.cases was left as it was" in message
    assert refusal(
        run_graph(url, tmp_path, raw_store=raw, selection=["provinces"], raise_on_error=False), "provinces"
    ).startswith(f"{manifest} is damaged")
    assert fingerprint(url, "covid.cases") == before


def test_a_damaged_manifest_is_written_anew_by_the_next_whole_run(stored, tmp_path):
    url, raw = stored
    manifest = raw / "manifest.json"
    good = json.loads(manifest.read_bytes())
    manifest.write_bytes(manifest.read_bytes()[:100])
    result = run_graph(url, tmp_path, raw_store=raw, raise_on_error=False)
    assert result.success
    rewritten = json.loads(manifest.read_bytes())
    assert {n: (e["key"], e["sha256"]) for n, e in rewritten.items()} == {
        n: (e["key"], e["sha256"]) for n, e in good.items()
    }
    assert "was damaged" in metadata_of(result, "raw_csv_s3")["manifest_replaced"]


# --- a raw file gone from the store --------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "step"), [("cases", "cleaned_cases"), ("departments", "departments")])
def test_a_raw_file_deleted_from_the_store_is_named_and_fetched_again_by_the_next_whole_run(
    stored, tmp_path, source, step
):
    url, raw = stored
    [deleted] = (raw / source).iterdir()
    deleted.unlink()
    message = refusal(run_graph(url, tmp_path, raw_store=raw, selection=[step], raise_on_error=False), step)
    assert message.startswith(f"{deleted}, the current {source} file by manifest.json, is missing"), message
    assert "materialize raw_csv_s3 again" in message
    assert run_graph(url, tmp_path, raw_store=raw, raise_on_error=False).success
    assert deleted.is_file()


# --- the store's folder --------------------------------------------------------------------------------------


def test_a_raw_store_setting_that_names_a_file_is_refused_naming_it(sample_copy, tmp_path):
    a_file = tmp_path / "raw.zip"
    a_file.write_bytes(b"not a folder")
    message = refusal(run_graph(sample_copy, tmp_path, raw_store=a_file, raise_on_error=False), "raw_csv_s3")
    assert message.startswith(
        f"The raw store {a_file} is a file, not a folder: point COVID_RAW_STORE at a folder"
    )
    assert a_file.read_bytes() == b"not a folder"


@contextmanager
def tmpfs(folder: Path, options: str, why: str) -> Iterator[Path]:
    """A tmpfs mounted on `folder` for the test (skipped, saying `why` it needs one, where mounting is not allowed)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"{why}, and mounting one is not allowed here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


@pytest.fixture
def read_only_home(tmp_path, monkeypatch) -> Iterator[Path]:
    """COVID_HOME on a folder nobody may write: a read-only mount as root (root writes through file modes), a
    folder without write permission otherwise."""
    home = tmp_path / "home"
    monkeypatch.setenv("COVID_HOME", str(home))
    if os.geteuid() == 0:
        with tmpfs(home, "ro,size=1m", "root needs a read-only file system") as folder:
            yield folder
        return
    home.mkdir(mode=0o555)
    yield home
    home.chmod(0o755)


def test_a_read_only_covid_home_is_named_without_a_retry(sample_copy, tmp_path, read_only_home):
    message = refusal(run_graph(sample_copy, tmp_path, raw_store="", raise_on_error=False), "raw_csv_s3")
    assert message.startswith(f"The raw store cannot write {read_only_home / 'raw'}"), message
    assert "COVID_HOME" in message and "COVID_RAW_STORE" in message
    assert "read-only file system" in message or "permission denied" in message


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 64 KB disk of its own: the bundled registry (150 KB) does not fit."""
    with tmpfs(tmp_path / "small", "size=64k", "a full disk is a small tmpfs") as disk:
        yield disk


def test_a_full_raw_store_disk_is_named_and_leaves_no_partial_file(sample_copy, tmp_path, small_disk):
    raw = small_disk / "raw"
    raw.mkdir()
    (raw / "manifest.json").write_text("{}")
    message = refusal(run_graph(sample_copy, tmp_path, raw_store=raw, raise_on_error=False), "raw_csv_s3")
    assert message.startswith(f"The raw store cannot write {raw / 'cases'}"), message
    assert "no space left on the device" in message and "COVID_RAW_STORE" in message
    assert "the raw store" in message.lower() and "left as they were" in message
    assert partial_files(small_disk) == []
    assert (raw / "manifest.json").read_text() == "{}"


def test_a_full_disk_never_leaves_a_half_written_file_under_its_name(small_disk):
    from covid_pipeline.resources.object_store import ObjectStore, StoreError

    store = ObjectStore(str(small_disk), name="raw store", setting="COVID_RAW_STORE")
    store.put_bytes(b"{}", "manifest.json")
    with pytest.raises(StoreError, match="no space left on the device"):
        store.put_bytes(b"x" * 200_000, "manifest.json")
    assert store.get_bytes("manifest.json") == b"{}" and partial_files(small_disk) == []


def test_the_sensor_asks_for_the_run_that_writes_a_damaged_manifest_anew(stored):
    from dagster import DagsterInstance, RunRequest, build_sensor_context

    from covid_pipeline.automation import new_publication
    from covid_pipeline.resources.sources import SourcesResource
    from covid_pipeline.resources.stores import StoreResource

    _, raw = stored
    (raw / "manifest.json").write_bytes(b"{")
    context = build_sensor_context(
        instance=DagsterInstance.ephemeral(),
        resources={
            "sources": SourcesResource(
                cases_url=SOURCES[0], provinces_url=SOURCES[1], departments_url=SOURCES[2]
            ),
            "raw_store": StoreResource(location=str(raw)),
        },
    )
    request = new_publication(context)
    assert (
        isinstance(request, RunRequest)
        and request.tags["covid/changed_sources"] == "cases,provinces,departments"
    )
    assert request.tags["covid/manifest_damaged"].startswith("not JSON")


def test_a_raw_file_deleted_from_an_s3_store_is_named(sample_copy, tmp_path, s3_bucket):
    import boto3

    raw = f"s3://{s3_bucket}/raw"
    assert run_graph(sample_copy, tmp_path, raw_store=raw, raise_on_error=False).success
    s3 = boto3.client("s3")
    [key] = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="raw/cases/")["Contents"]]
    s3.delete_object(Bucket=s3_bucket, Key=key)
    message = refusal(
        run_graph(sample_copy, tmp_path, raw_store=raw, selection=["cleaned_cases"], raise_on_error=False),
        "cleaned_cases",
    )
    assert message.startswith(f"s3://{s3_bucket}/{key}, the current cases file by manifest.json, is missing")
    assert run_graph(sample_copy, tmp_path, raw_store=raw, raise_on_error=False).success
    assert s3.head_object(Bucket=s3_bucket, Key=key)["ContentLength"] > 0
