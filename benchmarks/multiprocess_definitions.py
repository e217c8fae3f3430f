"""The project's definitions with Dagster's default multiprocess executor instead of the in-process one
(benchmarks/graph_benchmark.py --multiprocess: the executor the project chose against the alternative)."""

from dagster import Definitions, multiprocess_executor

from covid_pipeline import definitions as project

defs = Definitions(
    assets=project.all_assets,
    asset_checks=project.all_checks,
    resources=project.resources,
    executor=multiprocess_executor,
)
