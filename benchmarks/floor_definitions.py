"""Dagster by itself: a graph of the project's shape whose steps do nothing, run like the project's graph
(benchmarks/graph_benchmark.py, contender `floor`). What its run costs is what Dagster charges, in a fresh
`dagster asset materialize` process on this machine, for a graph of 20 assets and 7 checks in 10 steps:
imports, the instance, the run's records and events, the exit. No project library is imported.

The shape is the project's: raw files; two reference tables and the crosswalk; the cases; six checks on
them in one step; the aggregates and their check; thirteen marts in one step; the report.
"""

import atexit
import gc

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetSpec,
    Definitions,
    MaterializeResult,
    asset,
    asset_check,
    in_process_executor,
    multi_asset,
    multi_asset_check,
)

MARTS = [f"mart_{n:02d}" for n in range(13)]
CASES_CHECKS = [f"cases_check_{n}" for n in range(6)]


@asset
def raw() -> None:
    """No work."""


@asset(deps=[raw])
def provinces() -> None:
    """No work."""


@asset(deps=[raw])
def departments() -> None:
    """No work."""


@asset(deps=[departments])
def crosswalk() -> None:
    """No work."""


@asset(deps=[raw])
def cases() -> None:
    """No work."""


@multi_asset_check(specs=[AssetCheckSpec(name, asset=cases, blocking=True) for name in CASES_CHECKS])
def cases_checks():
    for name in CASES_CHECKS:
        yield AssetCheckResult(check_name=name, asset_key=cases.key, passed=True)


@asset(deps=[cases, provinces, crosswalk])
def aggregates() -> None:
    """No work."""


@asset_check(asset=aggregates, blocking=True)
def aggregates_check() -> AssetCheckResult:
    return AssetCheckResult(passed=True)


@multi_asset(specs=[AssetSpec(name, deps=[aggregates]) for name in MARTS])
def marts():
    for name in MARTS:
        yield MaterializeResult(asset_key=name)


@asset(deps=MARTS)
def report() -> None:
    """No work."""


defs = Definitions(
    assets=[raw, provinces, departments, crosswalk, cases, aggregates, marts, report],
    asset_checks=[cases_checks, aggregates_check],
    executor=in_process_executor,
)

# The garbage collector kept out as covid_pipeline/definitions.py keeps it: the floor is the cheapest a
# Dagster process gets here, not a cost the project has already cut.
gc.freeze()
atexit.register(gc.freeze)
