"""The whole graph as people run it, beside the load alone, PostgreSQL's `\\copy` and the seed method.

    python benchmarks/graph_benchmark.py --rows 1000000 [--repeat 3] [--multiprocess] [--ui] [--json]
    python benchmarks/graph_benchmark.py --sample --ui --skip-cli      # the bundled sample, UI path only

On the project's defaults (embedded PostgreSQL and stores under COVID_HOME = benchmarks/out/graph_home_<N>,
the local Dagster instance in its dagster/ folder), with COVID_CASES_URL pointing at a synthetic
registry of N rows (benchmarks/generate_registry.py) and the georef files of the bundled sample:

- cli:     `dagster asset materialize -m covid_pipeline.definitions --select '*'` in a fresh process,
           with `force: true` for cleaned_cases (else an unchanged file is not loaded again);
           wall seconds and peak RSS of the process.
- floor:   the same command on a graph of the project's shape (20 assets, 7 checks, 10 steps) whose steps
           do nothing (benchmarks/floor_definitions.py), same instance: what Dagster itself costs here for
           such a graph in a fresh process, which no project's work avoids.
- cli-multiprocess (--multiprocess): the same with Dagster's multiprocess executor
           (benchmarks/multiprocess_definitions.py): the alternative to the executor chosen.
- ui (--ui): `covid-pipeline dev` (webserver + daemon) started once; each turn launches every asset
           and check through GraphQL as the UI's "Materialize all" does, and waits for the run.
           Seconds from the launch to the run's end time as the UI shows it (the run worker's RSS is not
           measured).
- ours, limit, seed: as in benchmarks/load_benchmark.py, against the same server.

For each graph run, each step's own time comes from the run's event log (STEP_START to STEP_SUCCESS);
the orchestration overhead is the graph's seconds minus the sum of the steps', and the part of it beyond
the floor is what this project's graph adds to Dagster's own cost. Contenders take turns
(--repeat), so a busy spell on a shared machine slows them alike; the best turn is kept.
"""

import argparse
import json
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run from a checkout: import this copy of covid_pipeline

from benchmarks.load_benchmark import (  # noqa: E402
    LIMIT_TABLE,
    OUT,
    best_of,
    export_cleaned,
    measured,
    psql_path,
    registry_zip,
    row_count,
    run_child,
    run_limit,
    save_figures,
)

FORCE = {"ops": {"cleaned_cases": {"config": {"force": True}}}}
# One COVID_HOME per registry size: on the project's defaults a load of far fewer cases than the previous
# one is refused (COVID_MAX_ROW_DROP), as a truncated publication would be.
HOME = OUT / "graph_home_{size}"


def environment(source: Path, home: Path) -> None:
    """The project's defaults, but for the registry's URL; inherited by every contender's process."""
    from covid_pipeline.cli import sample_sources
    from covid_pipeline.instance import prepare_dagster_home

    for name in [n for n in os.environ if n.startswith("COVID_") or n == "DAGSTER_HOME"]:
        del os.environ[name]
    os.environ.update(sample_sources(), COVID_CASES_URL=str(source), COVID_HOME=str(home))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    # Bytecode cached as a user's Python caches it (some images set PYTHONDONTWRITEBYTECODE: every fresh
    # process would compile the project again); the first turn writes it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    prepare_dagster_home()


def warehouse_url(home: Path) -> str:
    """The warehouse the graph writes by default (embedded, under COVID_HOME), with a schema for the limit."""
    import psycopg

    from covid_pipeline.resources.database import migrate
    from covid_pipeline.resources.embedded_postgres import embedded_server_url

    url = embedded_server_url(home / "pgdata")
    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    return url


def step_times(run_id: str) -> dict:
    """Each step's own seconds (STEP_START to STEP_SUCCESS) and the run's, from the instance's event log."""
    from dagster import DagsterEventType, DagsterInstance

    starts, steps, run = {}, {}, {}
    with DagsterInstance.get() as instance:
        status = instance.get_run_by_id(run_id).status.value
        for entry in instance.all_logs(run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = entry.timestamp
            elif event.event_type == DagsterEventType.STEP_SUCCESS:
                steps[event.step_key] = entry.timestamp - starts[event.step_key]
            elif event.event_type in (DagsterEventType.RUN_START, DagsterEventType.RUN_SUCCESS):
                run[event.event_type] = entry.timestamp
    if status != "SUCCESS":
        raise SystemExit(f"run {run_id} ended {status}")
    return {
        "steps": steps,
        "run_seconds": run[DagsterEventType.RUN_SUCCESS] - run[DagsterEventType.RUN_START],
        "run_id": run_id,
    }


def latest_run_id() -> str:
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        return instance.get_runs(limit=1)[0].run_id


def run_cli(module: str, config: dict = FORCE) -> dict:
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", module, "--select", "*"]
    seconds, peak, _ = measured([*command, "--config-json", json.dumps(config)])
    return with_overhead(step_times(latest_run_id()) | {"seconds": seconds, "peak_rss": peak})


def run_ui(base_url: str) -> dict:
    from covid_pipeline_tests.helpers.dagster_ui import materialize_all, wait_for_run

    started = time.time()
    run_id = materialize_all(base_url, FORCE)
    # the run's end as the UI shows it (not when the next poll saw it)
    seconds = wait_for_run(base_url, run_id, timeout=3600)["endTime"] - started
    return with_overhead(step_times(run_id) | {"seconds": seconds, "peak_rss": 0})


def with_overhead(result: dict) -> dict:
    work = sum(result["steps"].values())
    return result | {"steps_seconds": work, "overhead": result["seconds"] - work}


def start_ui():
    from covid_pipeline_tests.helpers.dagster_ui import start_dev, wait_for_graphql

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = start_dev(dict(os.environ), port, Path(os.environ["COVID_HOME"]) / "graph_dev.log")
    base_url = f"http://127.0.0.1:{port}"
    wait_for_graphql(base_url, process)
    return process, base_url


def benchmark(args) -> dict:
    OUT.mkdir(exist_ok=True)
    if args.sample:
        from covid_pipeline.cli import sample_sources

        source, generated = Path(sample_sources()["COVID_CASES_URL"]), {}
    else:
        source, generated = registry_zip(args.rows, args.seed, None)
    home = args.home or Path(str(HOME).format(size="sample" if args.sample else args.rows))
    environment(source, home)
    url, psql = warehouse_url(home), psql_path()
    results: dict = {"generated": generated, "zip_bytes": source.stat().st_size, "load": os.getloadavg()}
    contenders = [] if args.skip_cli else ["cli", "floor"]
    contenders += ["cli-multiprocess"] * args.multiprocess + ["ui"] * args.ui
    contenders += [] if args.graph_only else ["ours", "limit"]
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    ui = start_ui() if args.ui else None
    try:
        with tempfile.TemporaryDirectory() as folder:
            cleaned = None
            for turn in range(args.repeat):
                for name in contenders:
                    if name == "cli-multiprocess" and turn > 0:  # slow: once
                        continue
                    if name == "cli":
                        runs[name].append(run_cli("covid_pipeline.definitions"))
                    elif name == "floor":
                        runs[name].append(run_cli("benchmarks.floor_definitions", {}))
                    elif name == "cli-multiprocess":
                        runs[name].append(run_cli("benchmarks.multiprocess_definitions"))
                    elif name == "ui":
                        runs[name].append(run_ui(ui[1]))
                    elif name == "ours":
                        runs[name].append(run_child("ours", url, source))
                    elif name == "limit":
                        cleaned = cleaned or export_cleaned(url, psql, Path(folder))
                        runs[name].append(run_limit(url, psql, cleaned))
                    print(f"turn {turn + 1}: {name} {runs[name][-1]['seconds']:.2f} s", flush=True)
    finally:
        if ui:
            from covid_pipeline_tests.helpers.dagster_ui import stop

            stop(ui[0])
    results |= {name: best_of(taken) for name, taken in runs.items()}
    results["rows_in_table"] = row_count(url, "covid.cases")
    if "limit" in results:
        results["limit"]["rows_in_table"] = row_count(url, f"bench.{LIMIT_TABLE}")
    if args.seed_method:
        results["seed"] = run_child("seed", url, source)
    results["load_after"] = os.getloadavg()
    return results


LABELS = {
    "cli": "graph: dagster asset materialize (in-process)",
    "floor": "Dagster alone: the same shape, no work",
    "cli-multiprocess": "graph: same, multiprocess executor",
    "ui": "graph: UI launch (webserver + daemon)",
    "ours": "load_cases alone (cleaned_cases' work)",
    "limit": "limit: psql \\copy of the cleaned CSV",
    "seed": "seed: pandas read_csv(30000) + to_sql",
}


def print_table(results: dict, repeat: int) -> None:
    rows = results["rows_in_table"]
    load = ", ".join(f"{x:.1f}" for x in results["load"])
    print(f"\nrows in covid.cases {rows:,}; zip {results['zip_bytes'] / 1e6:,.1f} MB; best of {repeat} turns")
    print(
        f"machine load average before: {load}; after: {', '.join(f'{x:.1f}' for x in results['load_after'])}"
    )
    print(f"{'contender':<46}{'seconds':>9}{'peak RSS MB':>13}{'steps s':>9}{'overhead':>16}")
    for key, label in LABELS.items():
        if key not in results:
            continue
        r = results[key]
        rss = f"{r['peak_rss'] / 2**20:>13,.0f}" if r["peak_rss"] else f"{'n/a':>13}"
        line = f"{label:<46}{r['seconds']:>9.2f}{rss}"
        if "steps" in r:
            line += f"{r['steps_seconds']:>9.2f}{r['overhead']:>8.2f} s {r['overhead'] / r['seconds']:>4.0%}"
        print(line)
    for key in ("cli", "cli-multiprocess", "ui"):
        if key in results:
            r = results[key]
            steps = ", ".join(f"{step} {s:.2f}" for step, s in r["steps"].items())
            print(f"{key} steps (s): {steps}; run {r['run_seconds']:.2f} s")
    if "cli" in results and "floor" in results:
        cli, floor = results["cli"], results["floor"]["overhead"]
        print(
            f"CLI overhead {cli['overhead']:.2f} s = Dagster's floor {floor:.2f} s + this graph's own "
            f"{cli['overhead'] - floor:.2f} s; with the floor alone the overhead would be "
            f"{floor / (cli['steps_seconds'] + floor):.0%} of the graph"
        )
    if "cli" in results and "limit" in results:
        print(f"graph via CLI / psql \\copy: {results['cli']['seconds'] / results['limit']['seconds']:.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--sample", action="store_true", help="the bundled sample instead of a generated registry"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated registry")
    parser.add_argument("--repeat", type=int, default=1, help="turns; the fastest of each contender is kept")
    parser.add_argument("--multiprocess", action="store_true", help="also the multiprocess executor (once)")
    parser.add_argument("--ui", action="store_true", help="also the UI path (webserver + daemon)")
    parser.add_argument("--skip-cli", action="store_true", help="leave out the CLI path")
    parser.add_argument("--graph-only", action="store_true", help="leave out load_cases and the limit")
    parser.add_argument("--seed-method", action="store_true", help="also the (slow) seed method, once")
    parser.add_argument("--json", action="store_true", help="also write the figures to benchmarks/out/")
    parser.add_argument(
        "--home", type=Path, help="COVID_HOME of the runs (default benchmarks/out/graph_home_<N>)"
    )
    args = parser.parse_args(argv)
    results = benchmark(args)
    print_table(results, args.repeat)
    if args.json:
        save_figures(results, f"graph_benchmark_{'sample' if args.sample else args.rows}")


if __name__ == "__main__":
    main()
