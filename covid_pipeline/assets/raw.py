"""raw_csv_s3: the published sources, copied into the raw store under their content hash.

The store keeps `<source>/<sha256><ext>` (identical content is never stored twice) and a
`manifest.json` naming the current file of each source: downstream assets read that.
"""

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


def current_source(store: ObjectStore, name: str) -> dict:
    """The manifest entry of source `name` (key, sha256, size, url, ...)."""
    if not store.exists(MANIFEST):
        raise RawSourceMissing(f"{store.uri(MANIFEST)} does not exist: materialize raw_csv_s3 first")
    manifest = store.get_json(MANIFEST)
    if name not in manifest:
        raise RawSourceMissing(f"{store.uri(MANIFEST)} has no '{name}' entry: materialize raw_csv_s3 again")
    return manifest[name]


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
    manifest = store.get_json(MANIFEST) if store.exists(MANIFEST) else {}
    metadata = {"raw_store": MetadataValue.text(store.location)}
    kept = f"The raw store ({store.location}) and its manifest were left as they were."
    with tempfile.TemporaryDirectory(prefix="covid-raw-") as folder, failures_for_people(kept):
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
