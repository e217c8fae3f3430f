"""Dagster by itself: one asset that does nothing, run like the project's graph
(benchmarks/graph_benchmark.py, contender `floor`). What its run costs is what any Dagster graph pays in a
fresh `dagster asset materialize` process on this machine, before the first step does any work."""

import atexit
import gc

from dagster import Definitions, asset, in_process_executor


@asset
def nothing() -> None:
    """No work: the run's time is Dagster's own (imports, instance, run records, events, exit)."""


defs = Definitions(assets=[nothing], executor=in_process_executor)

# The garbage collector kept out as covid_pipeline/definitions.py keeps it: the floor is the cheapest a
# Dagster process gets here, not a cost the project has already cut.
gc.freeze()
atexit.register(gc.freeze)
