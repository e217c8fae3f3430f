"""The whole-graph benchmark runs and prints its figures (no timing is checked: only that the tool works)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_benchmark(home: Path, *options: str) -> subprocess.CompletedProcess:
    """graph_benchmark.py on the bundled sample with COVID_HOME = `home`; its embedded server (if it started
    one) stopped after."""
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"} | {"PYTHONPATH": str(ROOT)}
    script = str(ROOT / "benchmarks" / "graph_benchmark.py")
    try:
        return subprocess.run(
            [sys.executable, script, "--sample", "--home", str(home), *options],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        if (home / "pgdata").exists():
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import pgserver, sys; pgserver.get_server(sys.argv[1]).cleanup()",
                    str(home / "pgdata"),
                ]
            )


@pytest.mark.slow
def test_graph_benchmark_prints_steps_and_overhead_of_the_cli_path_on_the_sample(tmp_path):
    printed = run_benchmark(tmp_path / "home")
    assert printed.returncode == 0, printed.stderr[-3000:]
    out = printed.stdout
    assert "rows in covid.cases 10,075 (\\copy read 10,075)" in out
    # The UI path launches through the same GraphQL helper (helpers/dagster_ui.py) that test_dev.py runs
    # against a live `dev`: left out here, it would start a second webserver and daemon for the same check.
    labels = (
        "\\copy: psql, raw CSV",
        "graph: dagster asset materialize",
        "Dagster alone",
        "load_cases alone",
    )
    for label in labels:  # seconds, then the ratio to \copy
        assert re.search(rf"^{re.escape(label)}.*\s\d+\.\d\d\s+\d+\.\d\d\s", out, re.MULTILINE), out
    for path in ("cli",):
        steps = re.search(rf"^{path} steps \(s\): (.*); run (\d+\.\d\d) s$", out, re.MULTILINE)
        assert steps, out
        names = [part.rsplit(" ", 1)[0] for part in steps.group(1).split(", ")]
        assert {"raw_csv_s3", "cleaned_cases", "cases_checks", "daily_aggregates", "report"} <= set(names)
    assert re.search(r"^graph / \\copy: \d+\.\dx \(\\copy ÷ graph \d+\.\d\d\)$", out, re.MULTILINE), out
    assert re.search(
        r"^cleaned_cases: \\copy ÷ step \d+\.\d\d; cases_checks \d+\.\d% of the load$", out, re.M
    ), out
    assert re.search(
        r"^disk: database [\d,]+ MB \(covid.cases [\d,]+ MB\), raw store [\d,]+ MB$", out, re.M
    ), out
    # where the CPU went: the contender's own processes and the embedded server, both found and counted
    for name in ("\\copy", "graph"):
        cpu = re.search(
            rf"^{re.escape(name)}: (\d+\.\d) s of CPU in its own process\(es\) \+ (\d+\.\d) s in the server = "
            r"(\d+\.\d) core-seconds in (\d+\.\d) s: \d+\.\d\d of \d+ cores busy$",
            out,
            re.M,
        )
        assert cpu, out
        own, server, total, _ = (float(x) for x in cpu.groups())
        assert abs(own + server - total) <= 0.11
        if name == "graph":  # (a 2 MB \\copy may round to 0.0 s on either side)
            assert own > 0 and server > 0
    # the figures again as one Markdown row, under its header
    header, rule, row = out.strip().splitlines()[-3:]
    assert header.startswith("| rows | `\\copy` s | graph s |") and rule.startswith("|---|")
    assert row.startswith("| 10,075 | ") and row.count("|") == header.count("|")
    floor = (
        r"^CLI overhead (\d+\.\d\d) s = Dagster's floor (\d+\.\d\d) s \+ this graph's own (-?\d+\.\d\d) s$"
    )
    split = re.search(floor, out, re.MULTILINE)
    assert split, out
    overhead, dagster, ours = (float(x) for x in split.groups())
    assert abs(dagster + ours - overhead) <= 0.011


@pytest.mark.slow
def test_graph_benchmark_runs_the_graph_against_a_database_of_ones_own(tmp_path, warehouse_url):
    """--database-url: the graph and \\copy use that server (say, on another machine), no embedded one starts."""
    home = tmp_path / "home"
    printed = run_benchmark(home, "--graph-only", "--database-url", warehouse_url)

    assert printed.returncode == 0, printed.stderr[-3000:]
    assert "rows in covid.cases 10,075 (\\copy read 10,075)" in printed.stdout
    assert not (home / "pgdata").exists()
    with psycopg.connect(warehouse_url) as conn:
        assert conn.execute("SELECT count(*) FROM covid.cases").fetchone()[0] == 10_075
        assert conn.execute("SELECT count(*) FROM reporting.latest_update").fetchone()[0] == 1
