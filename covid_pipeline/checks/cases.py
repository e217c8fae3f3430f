"""Checks on covid.cases, evaluated together in one step after every load and shown in the UI beside the asset.

One op for all of them (`multi_asset_check`): each check is a cheap SQL query, and a step of its own would cost
more to start than to run. The figures about the rows come from what covid.cases' load counted as it streamed the
file (ingest/profile.py), as long as the table is exactly what that load wrote; a table changed since is counted
again (checks/query.py). Only the row count is read back from the table every time. Blocking checks stop daily_aggregates (and what follows) from being built on a table
that fails them. The load's own gate (ingest/gate.py) already refused the worst files with the same thresholds:
these checks make the figures visible, and catch what a relaxed threshold let through.
"""

from collections.abc import Callable, Iterator

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    MetadataValue,
    multi_asset_check,
)

from covid_pipeline.assets.cases import cleaned_cases
from covid_pipeline.assets.crosswalk import department_crosswalk, mapping
from covid_pipeline.assets.reference import departments, provinces
from covid_pipeline.checks.query import cases_as_loaded, counted_from, fetch, fetch_counted, share
from covid_pipeline.ingest.registry_format import CATEGORICAL_COLUMNS, REGISTRY_COLUMNS, Kind
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.warehouse import WarehouseResource

DATE_COLUMNS = [c.source for c in REGISTRY_COLUMNS if c.kind is Kind.DATE]


def case_ids_unique(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    with warehouse.connect() as conn:
        load_id = cases_as_loaded(conn)
    if load_id:  # the table its load wrote, on which it built the primary key
        counts = fetch(warehouse, "cases_key_loaded.sql", {"load_id": load_id})
    else:
        counts = fetch(warehouse, "cases_key.sql")
    return AssetCheckResult(
        passed=counts["null_ids"] == 0 and counts["duplicated_ids"] == 0,
        metadata={name: MetadataValue.int(value) for name, value in counts.items()}
        | {"counted_from": MetadataValue.text(counted_from(load_id))},
    )


def row_count_kept(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    """covid.cases holds the rows its load recorded, and that load did not drop more rows than allowed.

    The allowance is the one the load's gate applied (COVID_MAX_ROW_DROP at the time): a drop accepted
    once is the new baseline, and later runs on the same file do not fail it again.
    """
    counts = fetch(warehouse, "cases_row_count.sql")
    rows, recorded, previous = counts["rows"], counts["rows_loaded"] or 0, counts["previous_rows"]
    drop = 1 - rows / previous if previous else 0.0
    allowed = counts["accepted_max_row_drop"]
    allowed = quality.max_row_drop if allowed is None else allowed
    problems = []
    if rows != recorded:
        problems.append(
            f"covid.cases holds {rows:,} rows but its load (load {counts['load_id']}) recorded {recorded:,}: "
            "the table was changed outside the pipeline. Reload it (cleaned_cases with force=true)."
        )
    if drop > allowed:
        problems.append(
            f"{rows:,} rows, {drop:.1%} fewer than the {previous:,} of the load before (at most {allowed:.0%} "
            "allowed by COVID_MAX_ROW_DROP, the quality resource's max_row_drop)."
        )
    return AssetCheckResult(
        passed=not problems,
        description=" ".join(problems) or None,
        metadata={
            "rows": MetadataValue.int(rows),
            "rows_recorded_by_load": MetadataValue.int(recorded),
            "previous_load_rows": MetadataValue.int(previous or 0),
            "drop": MetadataValue.float(round(drop, 6)),
            "max_row_drop": MetadataValue.float(quality.max_row_drop),
            "max_row_drop_accepted_by_load": MetadataValue.float(float(allowed)),
        },
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


def dates_in_range(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    rows, origin = fetch_counted(warehouse, "cases_dates.sql", {"earliest": quality.earliest}, many=True)
    by_column = {r["column_name"]: r for r in rows}
    dated = {c: by_column[c]["dated"] if c in by_column else 0 for c in DATE_COLUMNS}
    outside = {c: by_column[c]["outside"] if c in by_column else 0 for c in DATE_COLUMNS}
    counts = {"earliest": rows[0]["earliest"], "latest": rows[0]["latest"]}
    table = ["| column | dates | outside the range | share |", "|---|---:|---:|---:|"] + [
        f"| {c} | {dated[c]:,} | {outside[c]:,} | {share(outside[c], dated[c]):.3%} |" for c in DATE_COLUMNS
    ]
    dated, outside = sum(dated.values()), sum(outside.values())
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
            "counted_from": MetadataValue.text(origin),
        },
    )


def codes_known_to_georef(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    """Provinces georef knows, and departments placed on georef through covid.department_crosswalk."""
    counts, origin = fetch_counted(warehouse, "cases_codes.sql", {"code_rule": mapping()["reasons"]["code"]})
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
            "counted_from": MetadataValue.text(origin),
        },
    )


def categorical_values_known(warehouse: WarehouseResource, quality: QualityResource) -> AssetCheckResult:
    """Rows whose sexo, origen_financiamiento or clasificacion_resumen is not a value SISA writes: kept
    in covid.cases (nothing is guessed), listed here so someone can decide what they mean."""
    known = {c.source: list(c.canonical) for c in CATEGORICAL_COLUMNS}
    unknown, origin = fetch_counted(warehouse, "cases_categories.sql", known, many=True)
    total = int(unknown[0]["all_unknown"]) if unknown else 0
    table = ["| column | value | cases |", "|---|---|---:|"] + [
        f"| {r['column_name']} | {r['value']!r} | {r['cases']:,} |" for r in unknown
    ]
    return AssetCheckResult(
        passed=total == 0,
        severity=AssetCheckSeverity.WARN,
        description=f"{total:,} cases have a value outside: "
        + "; ".join(f"{column} {', '.join(values)}" for column, values in known.items())
        if total
        else None,
        metadata={
            "cases_with_unknown_values": MetadataValue.int(total),
            "known_values": MetadataValue.json(known),
            "most_frequent_unknown_values": MetadataValue.md("\n".join(table)),
            "counted_from": MetadataValue.text(origin),
        },
    )


CheckFunction = Callable[[WarehouseResource, QualityResource], AssetCheckResult]

# name -> (function, blocking, description); evaluated in this order.
CASES_CHECKS: dict[str, tuple[CheckFunction, bool, str]] = {
    "case_ids_unique": (case_ids_unique, True, "case_id is never null and never repeated"),
    "row_count_kept": (
        row_count_kept,
        True,
        "covid.cases holds what its load recorded, and not many fewer rows than the load before",
    ),
    "rejected_share_under_limit": (
        rejected_share_under_limit,
        True,
        "the share of source rows rejected by the cleaning contract is under the limit",
    ),
    "dates_in_range": (
        dates_in_range,
        False,
        "case dates fall between the start of the epidemic and the publication's date (its most common "
        "ultima_actualizacion, at most the day it was loaded)",
    ),
    "categorical_values_known": (
        categorical_values_known,
        False,
        "sexo, origen_financiamiento and clasificacion_resumen hold values SISA writes (case and spacing "
        "variants are normalised on load; other values are kept and listed)",
    ),
    "codes_known_to_georef": (
        codes_known_to_georef,
        False,
        "residence province and department codes are known to georef "
        "(SIN ESPECIFICAR counted apart; departments placed through covid.department_crosswalk, "
        "those left unplaced are reported)",
    ),
}


@multi_asset_check(
    specs=[
        AssetCheckSpec(
            name,
            asset=cleaned_cases,
            blocking=blocking,
            description=description,
            additional_deps=[provinces, departments, department_crosswalk]
            if name == "codes_known_to_georef"
            else None,
        )
        for name, (_, blocking, description) in CASES_CHECKS.items()
    ],
    can_subset=True,
    name="cases_checks",
    description="Every check on covid.cases, in one step (each is one SQL query).",
)
def cases_checks(
    context: AssetCheckExecutionContext, warehouse: WarehouseResource, quality: QualityResource
) -> Iterator[AssetCheckResult]:
    selected = {key.name for key in context.selected_asset_check_keys}
    for name, (evaluate, _, _) in CASES_CHECKS.items():
        if name in selected:
            result = evaluate(warehouse, quality)
            yield AssetCheckResult(
                asset_key=cleaned_cases.key,
                check_name=name,
                passed=result.passed,
                severity=result.severity,
                description=result.description,
                metadata=result.metadata,
            )
