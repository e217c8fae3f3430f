"""cleaned_cases: the registry typed, validated, deduplicated and loaded into covid.cases with COPY."""

import os

from dagster import (
    AssetExecutionContext,
    Backoff,
    Config,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableSchema,
    asset,
)
from pydantic import Field

from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.raw import current_source, published_name, raw_csv_s3
from covid_pipeline.ingest.cleaning import FutureDates
from covid_pipeline.ingest.gate import LoadLimits
from covid_pipeline.ingest.loader import LoadReport, load_cases
from covid_pipeline.ingest.registry_format import REGISTRY_COLUMNS, Kind
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.quality import QualityResource, SettingError
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource

POSTGRES_TYPES = {
    Kind.ID: "bigint",
    Kind.INT: "integer",
    Kind.TEXT: "text",
    Kind.DATE: "date",
    Kind.FLAG: "boolean",
    Kind.AGE_UNIT: "text",
}


# Seconds before the first retry of a lost database connection (doubled for the next): time for a restarted
# server to come back. COVID_RETRY_DELAY_SECONDS sets it (read at import, like the retry policy itself).
def retry_delay_seconds() -> float:
    value = os.environ.get("COVID_RETRY_DELAY_SECONDS") or "15"
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise SettingError(f"COVID_RETRY_DELAY_SECONDS={value!r} is not a number of seconds, e.g. 15.")
    return seconds


RETRY_DELAY_SECONDS = retry_delay_seconds()

CASES_SCHEMA = TableSchema(
    columns=[
        TableColumn(c.target, POSTGRES_TYPES[c.kind], description=f"source column {c.source}")
        for c in REGISTRY_COLUMNS
    ]
    + [TableColumn("source_line", "bigint", description="line of the source CSV")]
)


UNCHANGED_TAG = "covid/unchanged_source"


class CasesLoadConfig(Config):
    force: bool = Field(default=False, description="reload even if covid.cases already holds this exact file")


@asset(
    deps=[raw_csv_s3],
    group_name="cases",
    kinds={"postgres"},
    description="covid.cases: one typed row per id_evento_caso; rejected rows in covid.rejected_cases.",
    # A lost database connection is worth another try; bad input is not (failures_for_people). Linear: Dagster
    # waits delay × attempt, the delay then twice it (its exponential backoff waits (2^attempt - 1) × delay).
    retry_policy=RetryPolicy(max_retries=2, delay=RETRY_DELAY_SECONDS, backoff=Backoff.LINEAR),
)
def cleaned_cases(
    context: AssetExecutionContext,
    config: CasesLoadConfig,
    warehouse: WarehouseResource,
    raw_store: StoreResource,
    quality: QualityResource,
) -> MaterializeResult:
    store = raw_store.store()
    with failures_for_people("covid.cases was left as it was."):
        entry = current_source(store, "cases")
    limits = LoadLimits(
        max_rejected_share=quality.max_rejected_share,
        max_row_drop=quality.max_row_drop,
        max_row_growth=quality.max_row_growth,
        max_duplicate_share=quality.max_duplicate_share,
        max_empty_share=quality.max_empty_share,
        allow_older_publication=quality.allow_older_publication,
    )
    kept = f"covid.cases was left as it was (source: {entry['url']})."
    with (
        failures_for_people(
            kept, database=warehouse.location(), source_sha256=entry["sha256"], source_url=entry["url"]
        ),
        store.local_copy(entry["key"]) as path,
    ):
        report = load_cases(
            warehouse.url,
            path,
            source_sha256=entry["sha256"],
            source_url=entry["url"],
            file_name=published_name(entry["url"]),
            run_id=context.run_id,
            force=config.force,
            limits=limits,
            future_dates=FutureDates(tolerance_days=quality.future_date_tolerance_days),
            log=context.log.info,
        )
    if report.skipped_unchanged:
        context.log.info("the registry has not changed since the last load: covid.cases left as it is")
        _counts_of_load(warehouse, report)
    # The tag shows on the materialization in the UI: this run kept covid.cases as it was.
    tags = {UNCHANGED_TAG: "true"} if report.skipped_unchanged else None
    return MaterializeResult(metadata=_metadata(report, entry), tags=tags)


def _counts_of_load(warehouse: WarehouseResource, report: LoadReport) -> None:
    """Fill `report` with the counts of the load covid.cases came from, so that an unchanged registry
    still carries its row count (the UI's plots have no holes)."""
    with warehouse.connect() as conn:
        counts = conn.execute(
            read_sql("covid_pipeline.assets.sql", "cases_load.sql"), {"load_id": report.load_id}
        ).fetchone()
    report.rows_read, report.rows_loaded, report.rows_rejected, report.duplicate_rows = counts[:4]
    report.last_updated = counts[4]


def _metadata(report: LoadReport, entry: dict) -> dict:
    metadata = {
        "source_url": MetadataValue.text(entry["url"]),
        "source_sha256": MetadataValue.text(entry["sha256"]),
        "unchanged_source": MetadataValue.bool(report.skipped_unchanged),
        "load_id": MetadataValue.int(report.load_id or 0),
        "dagster/column_schema": CASES_SCHEMA,
    }
    rejected_share = report.rows_rejected / report.rows_read if report.rows_read else 0.0
    metadata |= {
        "dagster/row_count": MetadataValue.int(report.rows_loaded),
        "rows_read": MetadataValue.int(report.rows_read),
        "rows_loaded": MetadataValue.int(report.rows_loaded),
        "rows_rejected": MetadataValue.int(report.rows_rejected),
        "duplicate_rows": MetadataValue.int(report.duplicate_rows),
        "rejected_share": MetadataValue.float(rejected_share),
        "last_updated": MetadataValue.text(str(report.last_updated or "")),
    }
    if report.skipped_unchanged:  # what follows describes this run's own load
        return metadata
    return metadata | {
        "encoding": MetadataValue.text(report.encoding),
        "seconds": MetadataValue.float(round(report.seconds, 2)),
        # text: the UI prints numbers without thousands separators (66120)
        "rows_per_second": MetadataValue.text(f"{round(report.rows_per_second):,}"),
        "sample_rejects": MetadataValue.md(_rejects_table(report)),
    }


def _rejects_table(report: LoadReport) -> str:
    if not report.sample_rejects:
        return "No rejected rows."
    lines = ["| line | column | reason |", "|---|---|---|"]
    for reject in report.sample_rejects:
        reason = reject.reason.replace("|", "\\|")
        lines.append(f"| {reject.line_number} | {reject.column_name or ''} | {reason} |")
    return "\n".join(lines) + "\n\nAll of them: `SELECT * FROM covid.rejected_cases`."
