"""How fast the registry loads, against the server's own ingest speed (`psql \\copy`) and the seed project's method.

    python benchmarks/load_benchmark.py --rows 1000000 [--repeat 3] [--data DIR] [--json]

For N synthetic rows (benchmarks/generate_registry.py, cached in --data, benchmarks/out/ by default), each
contender runs in its own process, one after the other, against the same server (COVID_DATABASE_URL, or the
embedded PostgreSQL kept in benchmarks/out/pgdata):

- ours:   `load_cases` as `cleaned_cases` runs it: zip -> parse -> clean -> COPY -> keys -> swap-in.
- \\copy:  psql's `\\copy` of the same registry's raw CSV (unzipped beforehand, not timed) into an unlogged
          table of 25 text columns: the server's own ingest speed for the file, with no typing, no keys, no
          WAL and no client work. Every load figure is given as a ratio to it (`\\copy` seconds / seconds).
- seed:   the seed project's method: `pandas.read_csv(zip, chunksize=30000)` (default type inference,
          all 25 columns) and `DataFrame.to_sql(if_exists="append", index=False)` per chunk (plain
          executemany) through SQLAlchemy 2 + psycopg 3, into a table pandas creates (--seed-method).
- daily_aggregates: `build_daily_aggregates` on the rows ours loaded.

Seconds are the work itself, timed inside each process (interpreter start-up and imports excluded;
the whole psql process for `\\copy`). Peak RSS is each process's own maximum resident set
(`wait4`), the server's memory not included. With --repeat K each contender runs K times and the
fastest run is kept (the machine is shared; ours, daily_aggregates and `\\copy` take turns);
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
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE.parent))  # run from a checkout: import this copy of covid_pipeline

SEED_TABLE, COPY_TABLE = "cases_seed_method", "raw_copy"


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


def measured(command: list[str]) -> tuple[float, int, str, float]:
    """Run a process to the end; its wall seconds, its own peak RSS in bytes, its stdout and the CPU seconds
    it used (user + system, every thread, and any child it waited for).

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
        peak, cpu = launched.stderr.decode().strip().splitlines()[-1].split()
        out.seek(0)
        return seconds, int(peak), out.read().decode(), float(cpu)


# Runs a command, passes its output through and writes its peak RSS in bytes and its CPU seconds as stderr's
# last line.
LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ)
_, status, usage = os.wait4(pid, 0)
sys.stderr.flush()
print(usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime, file=sys.stderr)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def server_cpu_seconds(url: str) -> float | None:
    """CPU seconds the database server has used so far (the postmaster, its live processes and those it has
    reaped, such as each closed connection's backend); None for a server that is not a local one whose data
    folder is the URL's socket folder (the embedded server's is)."""
    from psycopg.conninfo import conninfo_to_dict

    pid_file = Path(str(conninfo_to_dict(url).get("host") or "")) / "postmaster.pid"
    if not Path("/proc").is_dir():  # Linux's process table; elsewhere (macOS) the server's CPU is not read
        return None
    try:
        postmaster = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    tick, total = os.sysconf("SC_CLK_TCK"), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        pid, parent = int(entry.name), int(fields[1])
        if pid == postmaster:  # utime, stime, and the reaped children's cutime, cstime
            total += sum(int(f) for f in fields[11:15])
        elif parent == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


def server_cpu_of(url: str, run) -> tuple[object, float | None]:
    """`run()`'s result and the server CPU seconds used while it ran."""
    before = server_cpu_seconds(url)
    result = run()
    if before is None:  # not a server whose CPU can be read here
        return result, None
    time.sleep(0.5)  # for the postmaster to reap the closed connections' backends (their CPU counts then)
    after = server_cpu_seconds(url)
    return result, None if after is None else after - before


def run_child(name: str, url: str, source: Path) -> dict:
    command = [sys.executable, __file__, "--child", name, "--url", url, "--zip", str(source)]
    (_, peak, stdout, cpu), server_cpu = server_cpu_of(url, lambda: measured(command))
    figures = json.loads(stdout.strip().splitlines()[-1])
    return figures | {"peak_rss": peak, "cpu": cpu, "server_cpu": server_cpu}


def run_copy(url: str, psql: str, raw_csv: Path) -> dict:
    """`psql \\copy` of the raw CSV into a fresh unlogged table of 25 text columns: the reference.

    Only the `\\copy` process is timed. The table is created before and dropped after (autovacuum kept off
    it), so it neither slows the next contender nor holds a second copy of the data on disk.
    """
    import psycopg
    from psycopg import sql

    from covid_pipeline.ingest.registry_format import SOURCE_NAMES

    table = sql.Identifier("bench", COPY_TABLE)
    columns = sql.SQL(", ").join(sql.SQL("{} text").format(sql.Identifier(name)) for name in SOURCE_NAMES)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(
            sql.SQL("CREATE UNLOGGED TABLE {} ({}) WITH (autovacuum_enabled = off)").format(table, columns)
        )
    command = f"\\copy bench.{COPY_TABLE} FROM '{raw_csv}' (FORMAT csv, HEADER)"
    (seconds, peak, _, cpu), server_cpu = server_cpu_of(
        url, lambda: measured([psql, "-X", "-q", "-d", url, "-c", command])
    )
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()[0]
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    return {"seconds": seconds, "peak_rss": peak, "rows": rows, "cpu": cpu, "server_cpu": server_cpu}


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


def database_url(database: str = "covid_bench", data_dir: Path = OUT / "pgdata") -> str:
    """COVID_DATABASE_URL, else `database` on the embedded server kept in `data_dir`."""
    url = os.environ.get("COVID_DATABASE_URL")
    if not url:
        from covid_pipeline.resources.embedded_postgres import embedded_server_url

        url = embedded_server_url(data_dir, database=database)
    prepare_database(url)
    return url


def prepare_database(url: str) -> None:
    """The warehouse's migrations, and a schema for the contenders' own tables."""
    import psycopg

    from covid_pipeline.resources.database import migrate

    migrate(url)
    with psycopg.connect(url) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS bench")


def registry_zip(rows: int, seed: int, given: Path | None, data: Path = OUT) -> tuple[Path, dict]:
    """The registry to load: `given` as it is, or a synthetic one of `rows` in `data` (generated once, kept).

    The generator streams the rows into the zip: its memory does not grow with `rows`.
    """
    from benchmarks.generate_registry import write_registry

    if given:
        return given, {}
    path = data / f"Covid19Casos_{rows}_seed{seed}.zip"
    summary_path = path.with_suffix(".json")
    if not path.exists() or not summary_path.exists():
        print(f"generating {rows:,} rows into {path} ...", flush=True)
        summary_path.write_text(json.dumps(write_registry(path, rows, seed=seed)))
    return path, json.loads(summary_path.read_text())


def raw_csv(source: Path, folder: Path) -> Path:
    """The registry's CSV as `\\copy` reads it: the zip's member unzipped into `folder` (kept, not timed),
    or a bare CSV as it is."""
    if not zipfile.is_zipfile(source):
        return source
    path = folder / f"{source.stem}.csv"
    if not path.exists():
        print(f"unzipping {source.name} for \\copy ...", flush=True)
        from covid_pipeline.ingest.registry_format import CASES_MEMBER

        partial = path.with_suffix(".partial")
        with (
            zipfile.ZipFile(source) as archive,
            archive.open(CASES_MEMBER) as member,
            open(partial, "wb") as out,
        ):
            shutil.copyfileobj(member, out, 1 << 20)
        partial.rename(path)
    return path


def row_count(url: str, table: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def disk_usage(url: str) -> dict:
    """Bytes on disk: the whole database, and covid.cases with its indexes."""
    import psycopg

    with psycopg.connect(url) as conn:
        database, cases = conn.execute(
            "SELECT pg_database_size(current_database()), pg_total_relation_size('covid.cases')"
        ).fetchone()
    return {"database_bytes": database, "cases_bytes": cases}


def benchmark(args) -> dict:
    args.data.mkdir(parents=True, exist_ok=True)
    source, generated = registry_zip(args.rows, args.seed, args.zip, args.data)
    url, psql = database_url(), psql_path()
    with tempfile.TemporaryDirectory(dir=args.data) as folder:
        # a given zip is unzipped for this run only; a generated one's CSV is kept beside it
        csv_path = raw_csv(source, Path(folder) if args.zip else args.data)
        return run_contenders(args, source, generated, url, psql, csv_path)


def run_contenders(args, source: Path, generated: dict, url: str, psql: str, csv_path: Path) -> dict:
    results: dict = {"rows": args.rows, "generated": generated, "zip_bytes": source.stat().st_size}
    results["csv_bytes"] = csv_path.stat().st_size
    runs: dict[str, list[dict]] = {"ours": [], "aggregates": [], "copy": []}
    # Turn by turn, so that a busy spell on a shared machine slows every contender alike.
    for _ in range(args.repeat):
        runs["copy"].append(run_copy(url, psql, csv_path))
        runs["ours"].append(run_child("ours", url, source))
        runs["aggregates"].append(run_child("aggregates", url, source))
    results |= {name: best_of(taken) for name, taken in runs.items()}
    results["ours"]["rows_in_table"] = row_count(url, "covid.cases")
    results["rows"] = results["ours"]["rows_read"]  # a --zip given holds its own number of rows
    results["disk"] = disk_usage(url)
    if args.seed_method:
        results["seed"] = best_of([run_child("seed", url, source) for _ in range(args.seed_repeat)])
    return results


def print_table(results: dict, repeat: int) -> None:
    rows, generated = results["rows"], results["generated"]
    described = [f"CSV {results['csv_bytes'] / 1e6:,.0f} MB", f"zip {results['zip_bytes'] / 1e6:,.0f} MB"]
    if generated:
        described.append(f"{generated['duplicates']:,} repeated ids")
    seed_runs = f", seed method {len(results['seed']['runs'])}" if "seed" in results else ""
    print(f"\nN = {rows:,} rows: {', '.join(described)}; best of {repeat} runs{seed_runs}")
    ratio_label = "÷ \\copy"
    print(f"{'contender':<50}{'seconds':>9}{'rows/s':>11}{ratio_label:>9}{'peak RSS MB':>13}")
    copy_seconds = results["copy"]["seconds"]
    labels = {
        "copy": "\\copy: psql, raw CSV -> unlogged text table",
        "ours": "ours: cleaned_cases (zip->clean->COPY->swap)",
        "seed": "seed: pandas read_csv(30000) + to_sql",
        "aggregates": "daily_aggregates on ours",
    }
    for key, label in labels.items():
        if key in results:
            r = results[key]
            throughput = f"{rows / r['seconds']:>11,.0f}" if key != "aggregates" else f"{'':>11}"
            ratio = f"{copy_seconds / r['seconds']:>9.2f}" if key != "aggregates" else f"{'':>9}"
            print(f"{label:<50}{r['seconds']:>9.2f}{throughput}{ratio}{r['peak_rss'] / 2**20:>13,.0f}")
    ours = results["ours"]
    print(
        f"rows in covid.cases: {ours['rows_in_table']:,} (read {ours['rows_read']:,}, rejected "
        f"{ours['rows_rejected']:,}, duplicates {ours['duplicate_rows']:,}); \\copy read {results['copy']['rows']:,}"
    )
    print(f"ours vs \\copy (\\copy seconds / ours): {copy_seconds / ours['seconds']:.2f}")
    if "seed" in results:
        print(f"seed/ours time: {results['seed']['seconds'] / ours['seconds']:.1f}")
    print(f"daily_aggregates/load time: {results['aggregates']['seconds'] / ours['seconds']:.1%}")
    disk = results["disk"]
    print(
        f"disk: database {disk['database_bytes'] / 1e6:,.0f} MB (covid.cases {disk['cases_bytes'] / 1e6:,.0f} MB)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender; the fastest is kept")
    parser.add_argument("--seed-method", action="store_true", help="also the (slow) seed method")
    parser.add_argument("--seed-repeat", type=int, default=1, help="runs of the seed method")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated registry")
    parser.add_argument("--zip", type=Path, help="registry zip to load instead of a generated one")
    parser.add_argument(
        "--data", type=Path, default=OUT, help="folder for the generated registry and its unzipped CSV"
    )
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
    """The figures as benchmarks/out/<name>.json (--json), for docs/performance.md's tables."""
    OUT.mkdir(exist_ok=True)
    path = OUT / f"{name}.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    print(f"figures: {path}")


if __name__ == "__main__":
    main()
