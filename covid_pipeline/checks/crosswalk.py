"""Checks on covid.department_crosswalk: every rule of data/department_crosswalk.yaml still matches the loaded
georef release.

A rule that no longer does (its georef department gone, or named otherwise) leaves its registry department
unplaced rather than stopping the counts; this check says which rule and why, so the mapping file can be
updated for the release. It warns: the counts, checks and reports are still built, those cases on no department.
"""

from dagster import AssetCheckResult, AssetCheckSeverity, MetadataValue, asset_check

from covid_pipeline.assets.crosswalk import MAPPING_FILE, UNPLACED, department_crosswalk, mapping
from covid_pipeline.checks.query import fetch
from covid_pipeline.resources.warehouse import WarehouseResource


@asset_check(
    asset=department_crosswalk,
    blocking=False,
    description=f"every exception of data/{MAPPING_FILE} matches the loaded georef release (a rule that no longer "
    "does leaves its registry department unplaced, and is listed here with the reason)",
)
def rules_match(warehouse: WarehouseResource) -> AssetCheckResult:
    unplaced = fetch(warehouse, "crosswalk_unplaced.sql", many=True)
    rule_of = {(r["province_id"], r["department_id"]): r["reason"] for r in mapping()["exceptions"]}
    table = ["| province | department | rule | why |", "|---:|---:|---|---|"] + [
        f"| {r['province_id']} | {r['department_id']} | {rule_of.get((r['province_id'], r['department_id']), '')} "
        f"| {r['reason'].removeprefix(UNPLACED)} |"
        for r in unplaced
    ]
    if unplaced:
        description = (
            f"{len(unplaced)} rules of {MAPPING_FILE} no longer match the loaded georef release: their registry "
            "departments are left unplaced (codes_known_to_georef counts their cases). "
            + "; ".join(
                f"province {r['province_id']}, department {r['department_id']}: {r['reason']}"
                for r in unplaced
            )
        )
    else:
        description = f"every rule of {MAPPING_FILE} matches the loaded georef release"
    return AssetCheckResult(
        passed=not unplaced,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata={
            "unplaced_rules": MetadataValue.int(len(unplaced)),
            "rules_that_no_longer_match": MetadataValue.md("\n".join(table)),
        },
    )


crosswalk_checks = [rules_match]
