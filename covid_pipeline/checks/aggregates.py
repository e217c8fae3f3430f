"""Checks on covid.daily_aggregates: its totals are the counts of covid.cases, measure by measure."""

from dagster import AssetCheckResult, MetadataValue, asset_check

from covid_pipeline.assets.aggregates import daily_aggregates
from covid_pipeline.checks.query import fetch
from covid_pipeline.resources.warehouse import WarehouseResource

MEASURES = ("notified", "confirmed", "deaths", "icu", "ventilated")


@asset_check(
    asset=daily_aggregates,
    blocking=True,
    description="summed over days and places, notified/confirmed/deaths/icu/ventilated equal covid.cases' counts",
)
def totals_match_cases(warehouse: WarehouseResource) -> AssetCheckResult:
    totals = fetch(warehouse, "aggregates_totals.sql")
    differences = {m: int(totals[m]) - int(totals[f"cases_{m}"]) for m in MEASURES}
    table = ["| measure | daily_aggregates | covid.cases |", "|---|---:|---:|"] + [
        f"| {m} | {int(totals[m]):,} | {int(totals[f'cases_{m}']):,} |" for m in MEASURES
    ]
    return AssetCheckResult(
        passed=not any(differences.values()),
        metadata={
            "totals": MetadataValue.md("\n".join(table)),
            **{f"{m}_difference": MetadataValue.int(d) for m, d in differences.items()},
        },
    )


aggregates_checks = [totals_match_cases]
