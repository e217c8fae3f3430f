"""Checks on covid.daily_aggregates: its totals are the counts of covid.cases, measure by measure.

The expectation is computed another way than daily_aggregates.sql: covid.cases is counted per combination of
classification and flags, and each measure is derived from those counts here, so a mistake in the aggregates'
SQL is not repeated by the check that should catch it. Those counts are the ones covid.cases' load took while it
streamed the file, as long as the table is what that load wrote (checks/query.py), else the table's own.
"""

from dagster import AssetCheckResult, MetadataValue, asset_check

from covid_pipeline.assets.aggregates import daily_aggregates
from covid_pipeline.checks.query import fetch
from covid_pipeline.resources.warehouse import WarehouseResource

MEASURES = ("notified", "confirmed", "deaths", "icu", "ventilated")
# Which cases each measure counts: every notified case; deaths, icu and ventilated of confirmed cases only.
COUNTS = {
    "notified": lambda c: True,
    "confirmed": lambda c: c["classification_summary"] == "Confirmado",
    "deaths": lambda c: c["classification_summary"] == "Confirmado" and c["deceased"] is True,
    "icu": lambda c: c["classification_summary"] == "Confirmado" and c["icu"] is True,
    "ventilated": lambda c: c["classification_summary"] == "Confirmado" and c["ventilated"] is True,
}


def expected_totals(warehouse: WarehouseResource) -> dict[str, int]:
    groups = fetch(warehouse, "cases_by_flags.sql", many=True)
    return {m: sum(g["cases"] for g in groups if COUNTS[m](g)) for m in MEASURES}


@asset_check(
    asset=daily_aggregates,
    blocking=True,
    description="summed over days and places, notified/confirmed/deaths/icu/ventilated equal covid.cases' counts",
)
def totals_match_cases(warehouse: WarehouseResource) -> AssetCheckResult:
    totals = {m: int(v) for m, v in fetch(warehouse, "aggregates_totals.sql").items()}
    expected = expected_totals(warehouse)
    differences = {m: totals[m] - expected[m] for m in MEASURES}
    table = ["| measure | daily_aggregates | covid.cases |", "|---|---:|---:|"] + [
        f"| {m} | {totals[m]:,} | {expected[m]:,} |" for m in MEASURES
    ]
    return AssetCheckResult(
        passed=not any(differences.values()),
        metadata={
            "totals": MetadataValue.md("\n".join(table)),
            **{f"{m}_difference": MetadataValue.int(d) for m, d in differences.items()},
        },
    )


aggregates_checks = [totals_match_cases]
