"""Dagster by itself: one asset that does nothing, run like the project's graph
(benchmarks/graph_benchmark.py, contender `floor`). What its run costs is what any Dagster graph pays in a
fresh `dagster asset materialize` process on this machine, before the first step does any work."""

from dagster import Definitions, asset, in_process_executor


@asset
def nothing() -> None:
    """No work: the run's time is Dagster's own (imports, instance, run records, events, exit)."""


defs = Definitions(assets=[nothing], executor=in_process_executor)
