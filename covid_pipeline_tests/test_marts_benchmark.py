"""The marts benchmark runs end to end on a small registry and prints every figure it promises (no timing is
checked here: the targets are read from its output by whoever runs it at 8M rows)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.generate_registry import write_registry
from covid_pipeline.assets.reporting import MARTS
from covid_pipeline.metabase.provision import load_definition

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_marts_benchmark_times_every_card_relation_and_the_exports(tmp_path, warehouse_url):
    source = tmp_path / "Covid19Casos.zip"
    write_registry(source, 3_000, seed=2)
    printed = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "marts_benchmark.py"), "--zip", str(source)]
        + ["--repeat", "1", "--refresh-repeat", "1"],
        env=os.environ | {"COVID_DATABASE_URL": warehouse_url, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout
    timed = {
        line.split()[0] + ("" if line.startswith("reporting.") else " " + line.split()[1])
        for line in printed.splitlines()
        if re.search(r"\d\.\d\s+[\d,]+\s+(ok|SLOW)$", line)
    }
    assert {f"card {c['key']}" for c in load_definition()["cards"]} | {
        f"reporting.{m}" for m in MARTS
    } <= timed
    assert re.search(
        r"marts \d+\.\d\d s, exports \d+\.\d\d s; .*\(marts \+ exports\) / load = [\d.]+%", printed
    )
