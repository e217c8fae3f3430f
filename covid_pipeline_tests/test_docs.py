"""What the README and the pages of docs/ name exists, as they describe it: every link leads somewhere, every path
of the layout is there, the assets, checks and reporting tables they list are the ones Dagster loads (each check
blocking or warning as the table says), and ingest/ is plain Python that runs without Dagster."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import psycopg
import pytest
from dagster import AssetKey

from covid_pipeline.assets.reporting import MARTS
from covid_pipeline.definitions import all_assets, all_checks, defs

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def table_rows(text: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


def names_in(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_link_of_a_page_leads_to_a_file_of_the_checkout(page):
    text = page.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    assert local, page
    assert [t for t in local if not (page.parent / t).exists()] == []


def test_every_path_of_the_readme_layout_exists():
    layout = (ROOT / "README.md").read_text(encoding="utf-8").split("## Layout", 1)[1]
    block = layout.split("```", 2)[1]
    folder = ROOT
    missing = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indented = line.startswith("  ")
        for name in re.split(r",\s*", line.strip().split("  ")[0]):
            path = (folder if indented else ROOT) / name
            if not path.exists():
                missing.append(str(path.relative_to(ROOT)))
            if not indented and name.endswith("/"):
                folder = path
    assert missing == []


def test_ingest_is_plain_python_that_runs_without_dagster():
    modules = [f"covid_pipeline.ingest.{p.stem}" for p in (ROOT / "covid_pipeline" / "ingest").glob("*.py")]
    code = (
        f"import importlib, sys\nfor name in {modules!r}:\n    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'dagster' or m.startswith('dagster.')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_readme_lists_the_assets_dagster_loads():
    rows = table_rows((ROOT / "README.md").read_text(encoding="utf-8"), "asset")
    listed = {name for row in rows for name in names_in(row[0])}
    loaded = {a.node_def.name if len(a.keys) > 1 else a.key.to_user_string() for a in all_assets}
    assert listed == loaded
    reporting = (ROOT / "docs" / "reporting.md").read_text(encoding="utf-8")
    assert "`codebook` writes" in reporting and "`exports` writes" in reporting


def loaded_checks() -> dict[str, tuple[str, bool]]:
    """Every asset check Dagster loads: its name, the asset it checks, whether it blocks."""
    found = {}
    for definition in all_checks:
        for spec in definition.check_specs:
            found[spec.name] = (spec.asset_key.to_user_string(), spec.blocking)
    return found


def test_the_check_table_is_the_checks_dagster_loads_blocking_as_it_says():
    rows = table_rows((ROOT / "docs" / "data-quality.md").read_text(encoding="utf-8"), "check")
    documented = {names_in(row[0])[0]: (names_in(row[1])[0], row[2] == "yes") for row in rows}
    assert {row[2] for row in rows} == {"yes", "warns"}
    # the reporting page describes the one check on the marts
    reporting = (ROOT / "docs" / "reporting.md").read_text(encoding="utf-8")
    assert "`plausible_notification_delays` (on `reporting/notification_delay`, severity WARN)" in reporting
    documented["plausible_notification_delays"] = ("reporting/notification_delay", False)
    assert documented == loaded_checks()


def test_the_reporting_tables_listed_are_the_marts_each_described_by_its_sql_file():
    rows = table_rows((ROOT / "docs" / "reporting.md").read_text(encoding="utf-8"), "table")
    listed = [name for row in rows for name in names_in(row[0])]
    assert sorted(listed) == sorted(MARTS)
    graph = defs.resolve_asset_graph()
    for mart in MARTS:
        first = (
            (ROOT / "covid_pipeline" / "assets" / "sql" / "reporting" / f"{mart}.sql")
            .read_text()
            .split("\n")[0]
        )
        assert first.startswith(f"-- reporting.{mart}: ") and len(first) > 40, first
        assert graph.get(AssetKey(["reporting", mart])).description == first.removeprefix("-- ")


def test_the_tables_the_readme_names_are_in_a_loaded_warehouse(sample_warehouse):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = text[text.index("The tables: ") :].split("\n\n", 1)[0]
    named = re.findall(r"`(covid\.\w+)`", paragraph)
    assert len(named) == 7 and "the `reporting` schema" in paragraph
    with psycopg.connect(sample_warehouse) as conn:
        missing = [t for t in named if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone() == (None,)]
        reporting = {
            r for (r,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'reporting'")
        }
        # covid.cases: English column names
        columns = [
            c
            for (c,) in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'covid' AND table_name = 'cases'"
            )
        ]
    assert missing == [] and reporting == set(MARTS)
    assert "classification_summary" in columns and not {"clasificacion_resumen", "fecha_apertura"} & set(
        columns
    )


def test_the_readme_s_requirements_and_command_are_the_project_s():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["requires-python"] == ">=3.11"  # "Python 3.11 or later"
    # `python -m covid_pipeline` is also installed as `covid-pipeline`
    assert project["project"]["scripts"] == {"covid-pipeline": "covid_pipeline.cli:main"}
    installed = shutil.which("covid-pipeline")
    assert installed, "the console script is not installed"
    shown = subprocess.run([installed, "--help"], capture_output=True, text=True, timeout=120, check=True)
    assert shown.stdout.startswith("usage: covid-pipeline")
    # the tests run on two pytest-xdist workers by default
    assert "-n 2" in project["tool"]["pytest"]["ini_options"]["addopts"]
