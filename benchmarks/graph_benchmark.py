"""The whole graph as people run it, against the server's own ingest speed (`psql \\copy` of the raw CSV).

    python benchmarks/graph_benchmark.py --rows 8000000 [--data DIR] [--home DIR] [--repeat 2] [--json]
    python benchmarks/graph_benchmark.py --rows 1000000 --ui --multiprocess --seed-method
    python benchmarks/graph_benchmark.py --sample --ui --skip-cli      # the bundled sample, UI path only
    python benchmarks/graph_benchmark.py --rows 8000000 --database-url postgresql://...   # a server elsewhere

On the project's defaults (embedded PostgreSQL, or the server of --database-url, and stores under
COVID_HOME = --home, by default benchmarks/out/graph_home_<N>, the local Dagster instance in its dagster/
folder), with COVID_CASES_URL pointing at a synthetic registry of N rows (benchmarks/generate_registry.py,
written once into --data and kept there with its unzipped CSV) and the georef files of the bundled sample.
Contenders take turns (--repeat), so a busy spell on a shared machine slows them alike; the best turn of each
is kept:

- copy:    `psql \\copy` of the registry's raw CSV into a fresh unlogged table of 25 text columns, on the same
           server: the reference every other figure is divided by (`\\copy` seconds / seconds).
- cli:     `dagster asset materialize -m covid_pipeline.definitions --select '*'` in a fresh process,
           with `force: true` for cleaned_cases (else an unchanged file is not loaded again);
           wall seconds and peak RSS of the process (the in-process executor: every step runs in it).
- floor:   the same command on a graph of the project's shape (20 assets, 7 checks, 10 steps) whose steps
           do nothing (benchmarks/floor_definitions.py), same instance: what Dagster itself costs here for
           such a graph in a fresh process, which no project's work avoids.
- ours:    `load_cases` alone in its own process (cleaned_cases' work without Dagster); --graph-only leaves it out.
- cli-multiprocess (--multiprocess): the graph with Dagster's multiprocess executor, once.
- ui (--ui): `covid-pipeline dev` (webserver + daemon) started once; each turn launches every asset
           and check through GraphQL as the UI's "Materialize all" does, and waits for the run.
- seed (--seed-method): the seed project's method, once (benchmarks/load_benchmark.py).

Each step's own time comes from the run's event log (STEP_START to STEP_SUCCESS); the orchestration overhead
is the graph's seconds minus the sum of the steps'. Each contender's CPU seconds (its own processes, from
wait4) and the embedded server's over the same time (from /proc) say how many core-seconds it needed: on N
cores nothing takes less than its core-seconds / N. After the turns: the database's size on disk (and
covid.cases' share of it) and the raw store's, as the graph left them.
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
    OUT,
    best_of,
    disk_usage,
    measured,
    prepare_database,
    psql_path,
    raw_csv,
    registry_zip,
    row_count,
    run_child,
    run_copy,
    save_figures,
    server_cpu_of,
)

FORCE = {"ops": {"cleaned_cases": {"config": {"force": True}}}}
# One COVID_HOME per registry size: on the project's defaults a load of far fewer cases than the previous
# one is refused (COVID_MAX_ROW_DROP), as a truncated publication would be.
HOME = OUT / "graph_home_{size}"
# The steps the issue sets a target for, and the checks on covid.cases (their share of the load).
LOAD_STEP, CASES_CHECKS_STEP = "cleaned_cases", "cases_checks"


def environment(source: Path, home: Path, database_url: str | None = None) -> None:
    """The project's defaults, but for the registry's URL (and the database's, when one is given); inherited
    by every contender's process."""
    from covid_pipeline.cli import sample_sources
    from covid_pipeline.instance import prepare_dagster_home

    for name in [n for n in os.environ if n.startswith("COVID_") or n == "DAGSTER_HOME"]:
        del os.environ[name]
    os.environ.update(sample_sources(), COVID_CASES_URL=str(source), COVID_HOME=str(home))
    if database_url:
        os.environ["COVID_DATABASE_URL"] = database_url
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))
    # Bytecode cached as a user's Python caches it (some images set PYTHONDONTWRITEBYTECODE: every fresh
    # process would compile the project again); the first turn writes it.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    prepare_dagster_home()


def warehouse_url(home: Path, given: str | None = None) -> str:
    """The warehouse the graph writes: `given`, else the default one (embedded, under COVID_HOME); with a schema
    for the reference."""
    from covid_pipeline.resources.embedded_postgres import embedded_server_url

    url = given or embedded_server_url(home / "pgdata")
    prepare_database(url)
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


def run_cli(url: str, module: str, config: dict = FORCE) -> dict:
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", module, "--select", "*"]
    (seconds, peak, _, cpu), server_cpu = server_cpu_of(
        url, lambda: measured([*command, "--config-json", json.dumps(config)])
    )
    figures = {"seconds": seconds, "peak_rss": peak, "cpu": cpu, "server_cpu": server_cpu}
    return with_overhead(step_times(latest_run_id()) | figures)


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


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def benchmark(args) -> dict:
    args.data.mkdir(parents=True, exist_ok=True)
    if args.sample:
        from covid_pipeline.cli import sample_sources

        source, generated = Path(sample_sources()["COVID_CASES_URL"]), {}
    else:
        source, generated = registry_zip(args.rows, args.seed, None, args.data)
    home = args.home or Path(str(HOME).format(size="sample" if args.sample else args.rows))
    environment(source, home, args.database_url)
    url, psql = warehouse_url(home, args.database_url), psql_path()
    with tempfile.TemporaryDirectory(dir=args.data) as folder:
        csv_path = raw_csv(source, Path(folder) if args.sample else args.data)
        results: dict = {
            "generated": generated,
            "zip_bytes": source.stat().st_size,
            "csv_bytes": csv_path.stat().st_size,
            "load": os.getloadavg(),
        }
        results |= run_turns(args, url, psql, source, csv_path)
    results["rows_in_table"] = row_count(url, "covid.cases")
    results["disk"] = disk_usage(url) | {"raw_store_bytes": folder_bytes(home / "raw")}
    if args.seed_method:
        results["seed"] = run_child("seed", url, source)
    results["load_after"] = os.getloadavg()
    return results


def run_turns(args, url: str, psql: str, source: Path, csv_path: Path) -> dict:
    contenders = ["copy"] + ([] if args.skip_cli else ["cli", "floor"])
    contenders += ["cli-multiprocess"] * args.multiprocess + ["ui"] * args.ui
    contenders += [] if args.graph_only else ["ours"]
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    ui = start_ui() if args.ui else None
    try:
        for turn in range(args.repeat):
            for name in contenders:
                if name == "cli-multiprocess" and turn > 0:  # slow: once
                    continue
                load = os.getloadavg()[0]
                if name == "copy":
                    runs[name].append(run_copy(url, psql, csv_path))
                elif name == "cli":
                    runs[name].append(run_cli(url, "covid_pipeline.definitions"))
                elif name == "floor":
                    runs[name].append(run_cli(url, "benchmarks.floor_definitions", {}))
                elif name == "cli-multiprocess":
                    runs[name].append(run_cli(url, "benchmarks.multiprocess_definitions"))
                elif name == "ui":
                    runs[name].append(run_ui(ui[1]))
                elif name == "ours":
                    runs[name].append(run_child("ours", url, source))
                runs[name][-1]["load_average"] = load
                print(
                    f"turn {turn + 1}: {name} {runs[name][-1]['seconds']:.2f} s (load average {load:.1f})",
                    flush=True,
                )
    finally:
        if ui:
            from covid_pipeline_tests.helpers.dagster_ui import stop

            stop(ui[0])
    results = {name: best_of(taken) for name, taken in runs.items()}
    # \copy and the graph of one turn ran one after the other: on a shared machine their ratio is fairer than
    # the ratio of the two bests, which may come from a quiet and a busy spell. The turn of the fastest graph.
    if "cli" in runs:
        turns = [{"copy": copy, "cli": cli} for copy, cli in zip(runs["copy"], runs["cli"], strict=True)]
        results["turns"] = turns
        results["paired"] = min(turns, key=lambda turn: turn["cli"]["seconds"])
    return results


LABELS = {
    "copy": "\\copy: psql, raw CSV -> unlogged text table",
    "cli": "graph: dagster asset materialize (in-process)",
    "floor": "Dagster alone: the same shape, no work",
    "cli-multiprocess": "graph: same, multiprocess executor",
    "ui": "graph: UI launch (webserver + daemon)",
    "ours": "load_cases alone (cleaned_cases' work)",
    "seed": "seed: pandas read_csv(30000) + to_sql",
}


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f}"


def print_table(results: dict, repeat: int) -> None:
    rows, copy = results["rows_in_table"], results["copy"]["seconds"]
    load = ", ".join(f"{x:.1f}" for x in results["load"])
    print(
        f"\nrows in covid.cases {rows:,} (\\copy read {results['copy']['rows']:,}); CSV {mb(results['csv_bytes'])} MB, "
        f"zip {mb(results['zip_bytes'])} MB; best of {repeat} turns"
    )
    print(
        f"machine load average before: {load}; after: {', '.join(f'{x:.1f}' for x in results['load_after'])}"
    )
    ratio_label = "\\copy ÷"
    print(
        f"{'contender':<46}{'seconds':>9}{ratio_label:>9}{'peak RSS MB':>13}{'CPU s + server':>16}"
        f"{'steps s':>9}{'overhead':>16}"
    )
    for key, label in LABELS.items():
        if key not in results:
            continue
        r = results[key]
        rss = f"{r['peak_rss'] / 2**20:>13,.0f}" if r["peak_rss"] else f"{'n/a':>13}"
        line = f"{label:<46}{r['seconds']:>9.2f}{copy / r['seconds']:>9.2f}{rss}{cpu_text(r):>16}"
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
            f"{cli['overhead'] - floor:.2f} s"
        )
    disk = results["disk"]
    print(
        f"disk: database {mb(disk['database_bytes'])} MB (covid.cases {mb(disk['cases_bytes'])} MB), "
        f"raw store {mb(disk['raw_store_bytes'])} MB"
    )
    if "cli" in results:
        print_summary(results)


def cpu_text(result: dict) -> str:
    """The process's CPU seconds and the server's over the same time ("n/a" where not measured)."""
    if result.get("cpu") is None:
        return "n/a"
    server = result.get("server_cpu")
    return f"{result['cpu']:.1f} + {'?' if server is None else f'{server:.1f}'}"


def cpu_line(name: str, result: dict) -> str:
    """How much of the machine a contender kept busy: its core-seconds over its wall seconds."""
    own = f"{name}: {result['cpu']:.1f} s of CPU in its own process(es)"
    if result.get("server_cpu") is None:
        return f"{own} in {result['seconds']:.1f} s; the server's not measured (not the embedded server)"
    used = result["cpu"] + result["server_cpu"]
    return (
        f"{own} + {result['server_cpu']:.1f} s in the server = {used:.1f} core-seconds in "
        f"{result['seconds']:.1f} s: {used / result['seconds']:.2f} of {os.cpu_count()} cores busy"
    )


def print_summary(results: dict) -> None:
    """The figures the targets are about, as one Markdown table row (docs/performance.md's columns)."""
    for number, turn in enumerate(results["turns"], 1):
        copy, cli = turn["copy"]["seconds"], turn["cli"]
        load = cli["steps"].get(LOAD_STEP)
        print(
            f"turn {number}: \\copy {copy:.1f} s, graph {cli['seconds']:.1f} s (\\copy ÷ graph "
            f"{copy / cli['seconds']:.2f})"
            + (f", cleaned_cases {load:.1f} s ({copy / load:.2f})" if load else "")
            + f"; load average {turn['copy']['load_average']:.1f} / {cli['load_average']:.1f}"
        )
    paired, disk = results["paired"], results["disk"]
    cli, copy = paired["cli"], paired["copy"]["seconds"]
    print("the figures of the turn whose graph ran fastest (its own \\copy just before it):")
    steps = cli["steps"]
    load, checks = steps.get(LOAD_STEP), steps.get(CASES_CHECKS_STEP)
    print(f"graph / \\copy: {cli['seconds'] / copy:.1f}x (\\copy ÷ graph {copy / cli['seconds']:.2f})")
    for name, result in (("\\copy", paired["copy"]), ("graph", cli)):
        if result.get("cpu") is not None:
            print(cpu_line(name, result))
    if load:
        print(f"cleaned_cases: \\copy ÷ step {copy / load:.2f}; cases_checks {checks / load:.1%} of the load")
    header = (
        "| rows | `\\copy` s | graph s | `\\copy` ÷ graph | cleaned_cases s | `\\copy` ÷ cleaned_cases "
        "| cases_checks s (of the load) | other steps s | peak RSS MB | database MB (covid.cases) | raw store MB |"
    )
    others = ", ".join(
        f"{name} {seconds:.1f}"
        for name, seconds in sorted(steps.items(), key=lambda item: -item[1])
        if name not in (LOAD_STEP, CASES_CHECKS_STEP) and seconds >= 0.5
    )
    row = (
        f"| {results['rows_in_table']:,} | {copy:.1f} | {cli['seconds']:.1f} | {copy / cli['seconds']:.2f} | "
        + (
            f"{load:.1f} | {copy / load:.2f} | {checks:.1f} ({checks / load:.0%}) | "
            if load
            else "– | – | – | "
        )
        + f"{others or '–'} | {cli['peak_rss'] / 2**20:,.0f} | {mb(disk['database_bytes'])} "
        f"({mb(disk['cases_bytes'])}) | {mb(disk['raw_store_bytes'])} |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    print(row)


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
    parser.add_argument("--graph-only", action="store_true", help="leave out load_cases alone")
    parser.add_argument("--seed-method", action="store_true", help="also the (slow) seed method, once")
    parser.add_argument("--json", action="store_true", help="also write the figures to benchmarks/out/")
    parser.add_argument(
        "--data", type=Path, default=OUT, help="folder for the generated registry and its unzipped CSV"
    )
    parser.add_argument(
        "--home", type=Path, help="COVID_HOME of the runs (default benchmarks/out/graph_home_<N>)"
    )
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL of your own instead of the embedded one (the graph's COVID_DATABASE_URL), e.g. on "
        "another machine, so that the client and the server do not share cores; its CPU is then not measured",
    )
    args = parser.parse_args(argv)
    results = benchmark(args)
    print_table(results, args.repeat)
    if args.json:
        save_figures(results, f"graph_benchmark_{'sample' if args.sample else args.rows}")


if __name__ == "__main__":
    main()
