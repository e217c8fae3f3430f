"""Checks on covid.cases, run after every load and shown in the UI beside the asset.

Blocking checks stop daily_aggregates (and what follows) from being built on a table that fails them.
The load's own gate (ingest/gate.py) already refused the worst files with the same thresholds: these
checks make the figures visible, and catch what a relaxed threshold let through.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from covid_pipeline.assets.cases import cleaned_cases
from covid_pipeline.assets.reference import departments, provinces
from covid_pipeline.checks.query import fetch, share
from covid_pipeline.ingest.registry_format import REGISTRY_COLUMNS, Kind
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.warehouse import WarehouseResource

DATE_COLUMNS = [c.source for c in REGISTRY_COLUMNS if c.kind is Kind.DATE]


@asset_check(asset=cleaned_cases, blocking=True, description="case_id is never null and never repeated")
def case_ids_unique(warehouse: WarehouseResource) -> AssetCheckResult:
    counts = fetch(warehouse, "cases_key.sql")
    return AssetCheckResult(
        passed=counts["null_ids"] == 0 and counts["duplicated_ids"] == 0,
        metadata={name: MetadataValue.int(value) for name, value in counts.items()},
    )


@asset_check(
    asset=cleaned_cases,
    blocking=True,
    description="covid.cases holds what its load recorded, and not many fewer rows than the load before",
)
def row_count_kept(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    counts = fetch(warehouse, "cases_row_count.sql")
    previous = counts["previous_rows"]
    drop = 1 - counts["rows"] / previous if previous else 0.0
    consistent = counts["rows"] == counts["rows_loaded"]
    return AssetCheckResult(
        passed=consistent and drop <= quality.max_row_drop,
        metadata={
            "rows": MetadataValue.int(counts["rows"]),
            "rows_recorded_by_load": MetadataValue.int(counts["rows_loaded"] or 0),
            "previous_load_rows": MetadataValue.int(previous or 0),
            "drop": MetadataValue.float(round(drop, 6)),
            "max_row_drop": MetadataValue.float(quality.max_row_drop),
        },
    )


@asset_check(
    asset=cleaned_cases,
    blocking=True,
    description="the share of source rows rejected by the cleaning contract is under the limit",
)
def rejected_share_under_limit(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    counts = fetch(warehouse, "cases_rejected_share.sql")
    rejected = share(counts["rows_rejected"], counts["rows_read"])
    return AssetCheckResult(
        passed=rejected <= quality.max_rejected_share and counts["rejected_kept"] == counts["rows_rejected"],
        metadata={
            "rows_read": MetadataValue.int(counts["rows_read"]),
            "rows_rejected": MetadataValue.int(counts["rows_rejected"]),
            "rows_in_covid.rejected_cases": MetadataValue.int(counts["rejected_kept"]),
            "rejected_share": MetadataValue.float(round(rejected, 6)),
            "max_rejected_share": MetadataValue.float(quality.max_rejected_share),
        },
    )


@asset_check(
    asset=cleaned_cases,
    description="case dates fall between the start of the epidemic and the file's ultima_actualizacion",
)
def dates_in_range(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    counts = fetch(warehouse, "cases_dates.sql", {"earliest": quality.earliest})
    dated = sum(counts[f"{c}_dated"] for c in DATE_COLUMNS)
    outside = sum(counts[f"{c}_outside"] for c in DATE_COLUMNS)
    table = ["| column | dates | outside the range | share |", "|---|---:|---:|---:|"] + [
        f"| {c} | {counts[f'{c}_dated']:,} | {counts[f'{c}_outside']:,} | "
        f"{share(counts[f'{c}_outside'], counts[f'{c}_dated']):.3%} |"
        for c in DATE_COLUMNS
    ]
    outside_share = share(outside, dated)
    return AssetCheckResult(
        passed=outside_share <= quality.max_out_of_range_date_share,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "range": MetadataValue.text(f"{counts['earliest']} .. {counts['latest']}"),
            "dates": MetadataValue.int(dated),
            "outside_range": MetadataValue.int(outside),
            "outside_share": MetadataValue.float(round(outside_share, 6)),
            "max_out_of_range_date_share": MetadataValue.float(quality.max_out_of_range_date_share),
            "by_column": MetadataValue.md("\n".join(table)),
        },
    )


@asset_check(
    asset=cleaned_cases,
    additional_deps=[provinces, departments],
    description="residence province and department codes are known to georef "
    "(SIN ESPECIFICAR counted apart; unmatched departments are reported, not enforced)",
)
def codes_known_to_georef(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    counts = fetch(warehouse, "cases_codes.sql")
    cases = counts["cases"]
    unknown_provinces = share(counts["province_unknown"], cases)
    unmatched_departments = share(counts["department_unmatched"], cases)
    top = fetch(warehouse, "cases_unmatched_departments.sql", many=True)
    table = ["| province | department | name in the registry | cases |", "|---:|---:|---|---:|"] + [
        f"| {r['province_id']} | {r['department_id']} | {r['name'] or ''} | {r['cases']:,} |" for r in top
    ]
    return AssetCheckResult(
        passed=unknown_provinces <= quality.max_unknown_province_share
        and unmatched_departments <= quality.max_unmatched_department_share,
        severity=AssetCheckSeverity.WARN,
        metadata={
            **{name: MetadataValue.int(value) for name, value in counts.items()},
            "unknown_province_share": MetadataValue.float(round(unknown_provinces, 6)),
            "unspecified_province_share": MetadataValue.float(
                round(share(counts["province_unspecified"], cases), 6)
            ),
            "unmatched_department_share": MetadataValue.float(round(unmatched_departments, 6)),
            "unspecified_department_share": MetadataValue.float(
                round(share(counts["department_unspecified"], cases), 6)
            ),
            "most_frequent_unmatched_departments": MetadataValue.md("\n".join(table)),
        },
    )


cases_checks = [
    case_ids_unique,
    row_count_kept,
    rejected_share_under_limit,
    dates_in_range,
    codes_known_to_georef,
]
