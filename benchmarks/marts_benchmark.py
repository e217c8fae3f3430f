"""How fast the dashboards answer, and what the reporting marts cost per load.

    python benchmarks/marts_benchmark.py --rows 2000000 [--zip registry.zip] [--repeat 3] [--json]

For a synthetic registry of N rows (benchmarks/generate_registry.py, cached in benchmarks/out/) or a given zip,
against COVID_DATABASE_URL or the embedded PostgreSQL kept in benchmarks/out/pgdata (database covid_marts_bench):

1. the bundled georef files -> covid.provinces / covid.departments, then covid.department_crosswalk (not timed);
2. the registry -> covid.cases with `load_cases`, as cleaned_cases runs it (timed: the load);
3. `build_daily_aggregates`, then `build_marts` (covid.case_breakdown + every reporting table), each timed,
   right after the load and then --refresh-repeat - 1 more times (the best is shown too: the machine is shared);
4. every card's SQL of covid_pipeline/metabase/dashboard.yaml, and `SELECT * FROM reporting.<relation>` for every
   relation of the reporting schema, each run --repeat times on one connection; the best time is kept
   (execute + fetch of every row, as a client sees it).

Targets (issue 12): every query <= 100 ms; daily_aggregates + marts <= 15% of the load's time.
"""

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent))  # run from a checkout: import this copy of covid_pipeline

from benchmarks.load_benchmark import database_url, registry_zip  # noqa: E402

TARGET_MS, TARGET_SHARE = 100.0, 0.15


def load_reference(url: str) -> None:
    """The bundled georef files into covid.provinces / covid.departments, and the crosswalk built on them."""
    import psycopg

    from covid_pipeline.assets.crosswalk import build_department_crosswalk
    from covid_pipeline.assets.reference import (
        DEPARTMENT_FIELDS,
        PROVINCE_FIELDS,
        parse_georef,
        replace_table,
    )
    from covid_pipeline.cli import sample_sources

    sources = sample_sources()
    with psycopg.connect(url) as conn:
        for table, fields, key in (
            ("provinces", PROVINCE_FIELDS, "COVID_PROVINCES_URL"),
            ("departments", DEPARTMENT_FIELDS, "COVID_DEPARTMENTS_URL"),
        ):
            path = Path(sources[key])
            rows = parse_georef(path.read_bytes(), path.name, fields)
            if table == "departments":
                for row in rows:
                    row["department_code"] = row["department_id"] % 1000
            replace_table(conn, table, f"{table}_table.sql", rows)
        build_department_crosswalk(conn)


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def build(url: str, source: Path, refresh_repeat: int) -> dict:
    """Load once, then build aggregates + marts `refresh_repeat` times; seconds of each."""
    import psycopg

    from covid_pipeline.assets.aggregates import build_daily_aggregates
    from covid_pipeline.assets.reporting import build_marts
    from covid_pipeline.ingest.loader import load_cases

    load_seconds, report = timed(
        lambda: load_cases(url, source, source_sha256=f"marts benchmark {source.name}", force=True)
    )
    refreshes = []
    for _ in range(refresh_repeat):  # the first one right after the load, as the pipeline runs it
        with psycopg.connect(url) as conn:
            aggregates_seconds, _ = timed(build_daily_aggregates, conn)
        with psycopg.connect(url) as conn:
            marts_seconds, rows = timed(build_marts, conn)
        refreshes.append((aggregates_seconds, marts_seconds))
    best = min(refreshes, key=sum)
    with psycopg.connect(url) as conn:
        conn.execute(
            "ANALYZE"
        )  # as autovacuum soon would: the plans of the queries below are the steady ones
    return {
        "rows_loaded": report.rows_loaded,
        "load": load_seconds,
        "daily_aggregates": refreshes[0][0],
        "marts": refreshes[0][1],
        "best_daily_aggregates": best[0],
        "best_marts": best[1],
        "refreshes": refreshes,
        "mart_rows": rows,
    }


def queries(url: str) -> dict[str, str]:
    """Every card's SQL and a full read of every reporting relation, by label."""
    import psycopg

    from covid_pipeline.metabase.provision import load_definition

    found = {f"card {c['key']}": c["sql"] for c in load_definition()["cards"]}
    with psycopg.connect(url) as conn:
        relations = conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'reporting'::regnamespace "
            "AND relkind IN ('r', 'v', 'm') ORDER BY relname"
        ).fetchall()
    found |= {f"reporting.{name}": f"SELECT * FROM reporting.{name}" for (name,) in relations}
    return found


def time_queries(url: str, statements: dict[str, str], repeat: int) -> dict[str, dict]:
    import psycopg

    results = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for label, statement in statements.items():
            runs, rows = [], 0
            for _ in range(repeat):
                started = time.perf_counter()
                rows = len(conn.execute(statement).fetchall())
                runs.append((time.perf_counter() - started) * 1000)
            results[label] = {"best_ms": min(runs), "runs_ms": runs, "rows": rows}
    return results


def print_table(results: dict) -> None:
    build_ = results["build"]
    print(f"\ncovid.cases: {build_['rows_loaded']:,} rows; best of {results['repeat']} runs per query")
    print(f"{'query':<44}{'best ms':>9}{'rows':>9}  target")
    for label, r in results["queries"].items():
        verdict = "ok" if r["best_ms"] <= TARGET_MS else "SLOW"
        print(f"{label:<44}{r['best_ms']:>9.1f}{r['rows']:>9,}  {verdict}")
    slowest = max(results["queries"].items(), key=lambda item: item[1]["best_ms"])
    print(f"slowest: {slowest[0]} {slowest[1]['best_ms']:.1f} ms (target {TARGET_MS:.0f} ms)")
    for label, prefix in (("right after the load", ""), (f"best of {len(build_['refreshes'])}", "best_")):
        aggregates, marts = build_[f"{prefix}daily_aggregates"], build_[f"{prefix}marts"]
        print(
            f"load {build_['load']:.2f} s; {label}: daily_aggregates {aggregates:.2f} s, marts {marts:.2f} s, "
            f"(aggregates + marts) / load = {(aggregates + marts) / build_['load']:.1%} (target {TARGET_SHARE:.0%})"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated registry")
    parser.add_argument("--zip", type=Path, help="registry zip to load instead of a generated one")
    parser.add_argument("--repeat", type=int, default=3, help="runs per query; the fastest is kept")
    parser.add_argument("--refresh-repeat", type=int, default=3, help="builds of aggregates + marts")
    parser.add_argument("--json", action="store_true", help="also write the figures to benchmarks/out/")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    source, _ = registry_zip(args.rows, args.seed, args.zip)
    url = database_url("covid_marts_bench")
    load_reference(url)
    results = {"repeat": args.repeat, "zip": str(source), "build": build(url, source, args.refresh_repeat)}
    results["queries"] = time_queries(url, queries(url), args.repeat)
    print_table(results)
    if args.json:
        from benchmarks.load_benchmark import save_figures

        save_figures(results, f"marts_benchmark_{results['build']['rows_loaded']}")


if __name__ == "__main__":
    main()
