"""How fast the registry loads, against PostgreSQL's own COPY limit and the seed project's method.

    python benchmarks/load_benchmark.py --rows 1000000 [--repeat 3] [--json]

For N synthetic rows (benchmarks/generate_registry.py, cached in benchmarks/out/), each contender
runs in its own process, one after the other, against the same server (COVID_DATABASE_URL, or the
embedded PostgreSQL kept in benchmarks/out/pgdata):

- ours:  `load_cases` as `cleaned_cases` runs it: zip -> parse -> clean -> COPY -> keys -> swap-in.
- limit: psql's `\\copy` of the rows ours loaded (exported as CSV beforehand, not timed) into a
         fresh table of the same definition, created in the same transaction and copied with
         FREEZE, as ours does: the server's own ingest speed for these rows, with no client work.
- seed:  the seed project's method: `pandas.read_csv(zip, chunksize=30000)` (default type inference,
         all 25 columns) and `DataFrame.to_sql(if_exists="append", index=False)` per chunk (plain
         executemany) through SQLAlchemy 2 + psycopg 3, into a table pandas creates.
- daily_aggregates: `build_daily_aggregates` on the rows ours loaded.

Seconds are the work itself, timed inside each process (interpreter start-up and imports excluded;
the whole psql process for the limit). Peak RSS is each process's own maximum resident set
(`wait4`), the server's memory not included. With --repeat K each contender runs K times and the
fastest run is kept (the machine is shared; ours, daily_aggregates and the limit take turns);
peak RSS is the largest of the K.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent))  # run from a checkout: import this copy of covid_pipeline

SEED_TABLE, LIMIT_TABLE = "cases_seed_method", "cases_copy_limit"


# --- what runs in each contender's process --------------------------------------------------------


def run_ours(url: str, source: str) -> dict:
    from covid_pipeline.ingest.loader import load_cases

    started = time.perf_counter()
    report = load_cases(url, source, source_sha256=f"benchmark {Path(source).name}", force=True)
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "rows_read": report.rows_read,
        "rows_loaded": report.rows_loaded,
        "rows_rejected": report.rows_rejected,
        "duplicate_rows": report.duplicate_rows,
    }


def run_seed(url: str, source: str) -> dict:
    import pandas as pd
    import sqlalchemy

    engine = sqlalchemy.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS bench.{SEED_TABLE}")
    rows = 0
    for chunk in pd.read_csv(source, chunksize=30_000):
        chunk.to_sql(SEED_TABLE, engine, schema="bench", if_exists="append", index=False)
        rows += len(chunk)
    return {"seconds": time.perf_counter() - started, "rows_loaded": rows}


def run_aggregates(url: str, source: str) -> dict:
    import psycopg

    from covid_pipeline.assets.aggregates import build_daily_aggregates

    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        totals = build_daily_aggregates(conn)
    return {
        "seconds": time.perf_counter() - started,
        "rows": totals["rows"],
        "notified": int(totals["notified"]),
    }


CHILDREN = {"ours": run_ours, "seed": run_seed, "aggregates": run_aggregates}


# --- the parent: data, server, processes, table ---------------------------------------------------


def measured(command: list[str]) -> tuple[float, int, str]:
    """Run a process to the end; its wall seconds, its own peak RSS in bytes and its stdout.

    Linux carries a process's peak RSS over fork and exec, so a child of this (large) process would
    report at least this process's size: a small launcher process starts it and reads its wait4.
    """
    launcher = [sys.executable, "-S", "-c", LAUNCHER, *command]
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        launched = subprocess.run(launcher, stdout=out, stderr=subprocess.PIPE, check=False)
        seconds = time.perf_counter() - started
        if launched.returncode:
            sys.stderr.write(launched.stderr.decode(errors="replace"))
            raise SystemExit(f"{' '.join(command[:4])}... failed with exit code {launched.returncode}")
        peak = int(launched.stderr.decode().strip().splitlines()[-1])
        out.seek(0)
        return seconds, peak, out.read().decode()


# Runs a command, passes its output through and writes its peak RSS in bytes as stderr's last line.
LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stderr.flush()
print(usage.ru_maxrss * 1024, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_child(name: str, url: str, source: Path) -> dict:
    command = [sys.executable, __file__, "--child", name, "--url", url, "--zip", str(source)]
    _, peak, stdout = measured(command)
    return json.loads(stdout.strip().splitlines()[-1]) | {"peak_rss": peak}


def run_limit(url: str, psql: str, cleaned_csv: Path) -> dict:
    from covid_pipeline.resources.database import read_sql

    create = read_sql("covid_pipeline.assets.sql", "cases_table.sql").format(table=f"bench.{LIMIT_TABLE}")
    script = "\n".join(
        [
            "\\set ON_ERROR_STOP on",
            "SET client_min_messages = warning;",
            "BEGIN;",
            f"DROP TABLE IF EXISTS bench.{LIMIT_TABLE};",
            create,
            f"\\copy bench.{LIMIT_TABLE} FROM '{cleaned_csv}' (FORMAT csv, FREEZE)",
            "COMMIT;",
        ]
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script)
        file.flush()
        seconds, peak, _ = measured([psql, "-X", "-q", "-d", url, "-f", file.name])
    return {"seconds": seconds, "peak_rss": peak}


def best_of(results: list[dict]) -> dict:
    best = min(results, key=lambda r: r["seconds"])
    return best | {"peak_rss": max(r["peak_rss"] for r in results), "runs": [r["seconds"] for r in results]}


def psql_path() -> str:
    """psql from the pgserver wheel (same major version as the embedded server), else from PATH."""
    import pgserver

    bundled = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    found = str(bundled) if bundled.exists() else shutil.which("psql")
    if not found:
        raise SystemExit("psql not found (pgserver ships one; or install postgresql-client)")
    return found


def database_url() -> str:
    url = os.environ.get("COVID_DATABASE_URL")
    if not url:
        from covid_pipeline.resources.embedded_postgres import embedded_server_url

        url = embedded_server_url(OUT / "pgdata", database="covid_bench")
    import psycopg

    from covid_pipeline.resources.database import migrate

    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    return url


def registry_zip(rows: int, seed: int, given: Path | None) -> tuple[Path, dict]:
    """The registry to load: `given` as it is, or a synthetic one of `rows` (generated once, kept)."""
    from benchmarks.generate_registry import write_registry

    if given:
        return given, {}
    path = OUT / f"Covid19Casos_{rows}_seed{seed}.zip"
    summary_path = path.with_suffix(".json")
    if not path.exists() or not summary_path.exists():
        print(f"generating {rows:,} rows into {path} ...", flush=True)
        summary_path.write_text(json.dumps(write_registry(path, rows, seed=seed)))
    return path, json.loads(summary_path.read_text())


def export_cleaned(url: str, psql: str, folder: Path) -> Path:
    """The rows ours loaded, as the CSV a `\\copy` would read (not timed)."""
    path = folder / "cleaned_cases.csv"
    subprocess.run(
        [psql, "-X", "-q", "-d", url, "-c", f"\\copy covid.cases TO '{path}' (FORMAT csv)"], check=True
    )
    return path


def row_count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def benchmark(args) -> dict:
    OUT.mkdir(exist_ok=True)
    source, generated = registry_zip(args.rows, args.seed, args.zip)
    url, psql = database_url(), psql_path()
    results: dict = {"rows": args.rows, "generated": generated, "zip_bytes": source.stat().st_size}
    runs: dict[str, list[dict]] = {"ours": [], "aggregates": [], "limit": []}
    with tempfile.TemporaryDirectory() as folder:
        # Turn by turn, so that a busy spell on a shared machine slows every contender alike.
        for turn in range(args.repeat):
            runs["ours"].append(run_child("ours", url, source))
            runs["aggregates"].append(run_child("aggregates", url, source))
            if turn == 0:
                rows_loaded = row_count(url, "covid.cases")
                cleaned = export_cleaned(url, psql, Path(folder))
            runs["limit"].append(run_limit(url, psql, cleaned))
    results |= {name: best_of(taken) for name, taken in runs.items()}
    results["ours"]["rows_in_table"] = rows_loaded
    results["rows"] = results["ours"]["rows_read"]  # a --zip given holds its own number of rows
    results["limit"]["rows_in_table"] = row_count(url, f"bench.{LIMIT_TABLE}")
    if not args.skip_seed:
        results["seed"] = best_of([run_child("seed", url, source) for _ in range(args.seed_repeat)])
    return results


def print_table(results: dict, repeat: int) -> None:
    rows, generated = results["rows"], results["generated"]
    described = [f"zip {results['zip_bytes'] / 1e6:,.0f} MB"]
    if generated:
        described = [f"CSV {generated['csv_bytes'] / 1e6:,.0f} MB", *described]
        described.append(f"{generated['duplicates']:,} repeated ids")
    seed_runs = f", seed method {len(results['seed']['runs'])}" if "seed" in results else ""
    print(f"\nN = {rows:,} rows: {', '.join(described)}; best of {repeat} runs{seed_runs}")
    print(f"{'contender':<44}{'seconds':>9}{'rows/s':>11}{'peak RSS MB':>13}")
    labels = {
        "ours": "ours: cleaned_cases (zip->clean->COPY->swap)",
        "limit": "limit: psql \\copy of the cleaned CSV",
        "seed": "seed: pandas read_csv(30000) + to_sql",
        "aggregates": "daily_aggregates on ours",
    }
    for key, label in labels.items():
        if key in results:
            r = results[key]
            throughput = f"{rows / r['seconds']:>11,.0f}" if key != "aggregates" else f"{'':>11}"
            print(f"{label:<44}{r['seconds']:>9.2f}{throughput}{r['peak_rss'] / 2**20:>13,.0f}")
    ours = results["ours"]
    print(
        f"rows in covid.cases: {ours['rows_in_table']:,} (read {ours['rows_read']:,}, rejected "
        f"{ours['rows_rejected']:,}, duplicates {ours['duplicate_rows']:,})"
    )
    print(f"ours/limit throughput: {results['limit']['seconds'] / ours['seconds']:.2f}")
    if "seed" in results:
        print(f"seed/ours time: {results['seed']['seconds'] / ours['seconds']:.1f}")
    print(f"daily_aggregates/load time: {results['aggregates']['seconds'] / ours['seconds']:.1%}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the fastest is kept")
    parser.add_argument("--seed-repeat", type=int, default=1, help="runs of the (slow) seed method")
    parser.add_argument("--skip-seed", action="store_true", help="leave out the seed method")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated registry")
    parser.add_argument("--zip", type=Path, help="registry zip to load instead of a generated one")
    parser.add_argument("--json", action="store_true", help="also write the figures to benchmarks/out/")
    parser.add_argument("--child", choices=CHILDREN, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(CHILDREN[args.child](args.url, str(args.zip))))
        return
    results = benchmark(args)
    print_table(results, args.repeat)
    if args.json:
        save_figures(results, f"load_benchmark_{args.rows}")


def save_figures(results: dict, name: str) -> None:
    """The figures as benchmarks/out/<name>.json (--json), for the README's tables."""
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
