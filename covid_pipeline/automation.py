"""When the graph runs: every morning (schedule), and as soon as a source is republished (sensor).

The sensor asks each source what it is now (HEAD: ETag, Last-Modified, size; a local file's sha256)
without downloading it, and compares with what the raw store's manifest recorded at the last fetch.
The schedule stays as the fallback for servers that say nothing about their files.
"""

import hashlib
import json
import os

import requests
from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    ScheduleDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    sensor,
)

from covid_pipeline.assets.raw import ManifestDamaged, stored_manifest
from covid_pipeline.resources.object_store import ObjectStore
from covid_pipeline.resources.quality import parse_boolean
from covid_pipeline.resources.sources import SOURCE_NAMES, Probe, SourcesResource, local_path
from covid_pipeline.resources.stores import StoreResource

# Deployments switch both on with COVID_AUTOMATION=on (or true, yes, 1); on a laptop they start stopped.
AUTOMATION_ON = parse_boolean("COVID_AUTOMATION", os.environ.get("COVID_AUTOMATION") or "off")

refresh_everything = define_asset_job(
    "refresh_everything",
    selection=AssetSelection.all(),
    description="Fetch the sources and rebuild every table.",
)

daily_refresh = ScheduleDefinition(
    name="daily_refresh",
    job=refresh_everything,
    cron_schedule="0 7 * * *",
    execution_timezone="America/Argentina/Buenos_Aires",
    description="Every morning, after the Ministry's overnight publication.",
    default_status=DefaultScheduleStatus.RUNNING if AUTOMATION_ON else DefaultScheduleStatus.STOPPED,
)


def stored_versions(store: ObjectStore) -> dict[str, str]:
    """What each source was at its last fetch, as `Probe.version` would put it (empty: never fetched)."""
    versions = {}
    for name, entry in stored_manifest(store).items():
        is_local = local_path(entry["url"]) is not None
        probe = Probe(
            entry["url"],
            etag=None if is_local else entry.get("etag"),
            last_modified=None if is_local else entry.get("last_modified"),
            size=entry.get("bytes"),
            sha256=entry.get("sha256") if is_local else None,
        )
        versions[name] = f"{entry['url']}|{probe.version}"
    return versions


@sensor(
    job=refresh_everything,
    minimum_interval_seconds=30 * 60,
    description="Runs the graph when the registry or a georef file is republished (HEAD, no download).",
    default_status=DefaultSensorStatus.RUNNING if AUTOMATION_ON else DefaultSensorStatus.STOPPED,
)
def new_publication(context: SensorEvaluationContext, sources: SourcesResource, raw_store: StoreResource):
    current = {}
    for name in SOURCE_NAMES:
        try:
            probe = sources.probe(name)
        except (requests.RequestException, OSError) as exc:
            return SkipReason(f"could not ask the {name} source what it is now ({exc}); trying again later")
        if probe.version == Probe(probe.url).version:
            return SkipReason(
                f"{probe.url} gives no ETag, Last-Modified or size: changes cannot be seen without "
                "downloading it; the daily schedule refreshes it"
            )
        current[name] = f"{probe.url}|{probe.version}"
    try:
        stored = stored_versions(raw_store.store())
    except ManifestDamaged as damaged:  # a run writes it anew; its key changes with the damage, so it is run
        context.log.warning(str(damaged))
        key = hashlib.sha256(json.dumps([current, damaged.problem], sort_keys=True).encode()).hexdigest()[:20]
        tags = {
            "covid/changed_sources": ",".join(SOURCE_NAMES),
            "covid/manifest_damaged": damaged.problem[:200],
        }
        return RunRequest(run_key=key, tags=tags)
    changed = [name for name in SOURCE_NAMES if stored.get(name) != current[name]]
    if not changed:
        return SkipReason("no source has changed since it was last fetched")
    context.log.info(f"changed since the last fetch: {', '.join(changed)}")
    # The same publication is requested once, however many ticks see it (Dagster dedupes run keys).
    run_key = hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:20]
    return RunRequest(run_key=run_key, tags={"covid/changed_sources": ",".join(changed)})
