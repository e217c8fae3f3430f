"""raw_csv_s3: the published sources, copied into the raw store under their content hash.

The store keeps `<source>/<sha256><ext>` (identical content is never stored twice) and a
`manifest.json` naming the current file of each source: downstream assets read that.

The manifest is the only record of which stored file is current: the store keeps every version it ever
fetched, and its files' times say when a content was first stored, not when it was last published (a source
that returns to an earlier content keeps the old file). So a damaged manifest is never rebuilt from the store,
which could pick an older publication: the steps that read it refuse, naming it, and raw_csv_s3 (the first
step of every whole run) writes it anew from the sources themselves.
"""

import json
import re
import tempfile
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset

from covid_pipeline.assets.failures import RawSourceMissing, failures_for_people
from covid_pipeline.resources.object_store import ObjectStore
from covid_pipeline.resources.sources import SOURCE_NAMES, SourcesResource
from covid_pipeline.resources.stores import StoreResource

MANIFEST = "manifest.json"
STORED_KEY = re.compile(r"(?P<name>[a-z]+)/(?P<sha256>[0-9a-f]{64})\.(zip|csv)")
AGAIN = "materialize raw_csv_s3 again (dagster asset materialize --select raw_csv_s3, or the whole graph)"


class ManifestDamaged(RawSourceMissing):
    """manifest.json cannot be read or trusted: which stored file is current is unknown."""

    def __init__(self, uri: str, problem: str):
        super().__init__(
            f"{uri} is damaged ({problem}), and it alone says which stored file of each source is current: "
            f"{AGAIN}, which fetches the sources and writes it anew. Nothing was loaded."
        )
        self.problem = problem


def stored_manifest(store: ObjectStore) -> dict:
    """The manifest ({} before the first fetch); ManifestDamaged when it cannot be trusted."""
    if not store.exists(MANIFEST):
        return {}
    data = store.get_bytes(MANIFEST)
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestDamaged(store.uri(MANIFEST), f"not JSON: {exc}") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise ManifestDamaged(store.uri(MANIFEST), problem)
    return manifest


def _manifest_problem(manifest) -> str | None:
    """What makes a parsed manifest untrustworthy, or None: each entry names its file by its content hash."""
    if not isinstance(manifest, dict):
        return f"a JSON {type(manifest).__name__}, not an object of sources"
    for name, entry in manifest.items():
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(f), str) for f in ("key", "sha256", "url")
        ):
            return f'its "{name}" entry lacks a key, sha256 or url'
        stored = STORED_KEY.fullmatch(entry["key"])
        if not stored or (stored["name"], stored["sha256"]) != (name, entry["sha256"]):
            return (
                f'its "{name}" entry names {entry["key"]!r}, not the {name} file of sha256 {entry["sha256"]}'
            )
    return None


def current_source(store: ObjectStore, name: str) -> dict:
    """The manifest entry of source `name` (key, sha256, size, url, ...), whose file is in the store."""
    manifest = stored_manifest(store)
    if not manifest:
        raise RawSourceMissing(f"{store.uri(MANIFEST)} does not exist: materialize raw_csv_s3 first")
    if name not in manifest:
        raise RawSourceMissing(f"{store.uri(MANIFEST)} has no '{name}' entry: materialize raw_csv_s3 again")
    entry = manifest[name]
    if not store.exists(entry["key"]):
        raise RawSourceMissing(
            f"{store.uri(entry['key'])}, the current {name} file by {MANIFEST}, is missing from the raw store "
            f"(deleted or moved): {AGAIN}, which fetches it again. Nothing was loaded."
        )
    return entry


def published_name(url: str) -> str:
    """The file name a source is published under (the raw store keeps it under its sha256)."""
    return Path(urllib.parse.urlparse(url).path).name or url


@asset(
    group_name="raw",
    description="The registry zip and the georef provinces/departments files, kept in the raw store by sha256.",
    kinds={"s3", "csv"},
)
def raw_csv_s3(
    context: AssetExecutionContext, sources: SourcesResource, raw_store: StoreResource
) -> MaterializeResult:
    store = raw_store.store()
    metadata = {"raw_store": MetadataValue.text(store.location)}
    kept = f"The raw store ({store.location}) and its manifest were left as they were."
    with tempfile.TemporaryDirectory(prefix="covid-raw-") as folder, failures_for_people(kept):
        try:
            manifest = stored_manifest(store)
        except ManifestDamaged as damaged:  # every source is fetched below: the manifest is written whole
            context.log.warning(
                f"{store.uri(MANIFEST)} was damaged ({damaged.problem}): this run writes it anew from the sources"
            )
            manifest = {}
            metadata["manifest_replaced"] = MetadataValue.text(f"{MANIFEST} was damaged: {damaged.problem}")
        for name in SOURCE_NAMES:
            fetched = sources.fetch(name, Path(folder))
            key = f"{name}/{fetched.sha256}{fetched.extension}"
            already_stored = store.exists(key)
            if not already_stored:
                store.put_file(fetched.path, key)
            fetched.path.unlink()
            context.log.info(
                f"{name}: {fetched.size:,} bytes from {fetched.url} "
                f"({'already stored' if already_stored else 'stored'} as {store.uri(key)})"
            )
            manifest[name] = {
                "key": key,
                "uri": store.uri(key),
                "sha256": fetched.sha256,
                "bytes": fetched.size,
                "url": fetched.url,
                "etag": fetched.etag,
                "last_modified": fetched.last_modified,
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            metadata |= {
                f"{name}_bytes": MetadataValue.int(fetched.size),
                f"{name}_sha256": MetadataValue.text(fetched.sha256),
                f"{name}_url": MetadataValue.url(fetched.url)
                if "://" in fetched.url
                else MetadataValue.path(fetched.url),
                f"{name}_uri": MetadataValue.text(store.uri(key)),
                f"{name}_new_content": MetadataValue.bool(not already_stored),
                f"{name}_etag": MetadataValue.text(fetched.etag or ""),
                f"{name}_last_modified": MetadataValue.text(fetched.last_modified or ""),
            }
        store.put_json(manifest, MANIFEST)
    return MaterializeResult(metadata=metadata, data_version=None)
