"""covid.department_crosswalk on the real 2020-11-23 registry sample with both real georef releases: every case
with a specified department placed on a covid.departments row, on the department its name says."""

import csv
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity, AssetSelection

from covid_pipeline.assets.crosswalk import crosswalk_rows, mapping
from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.places import GEOREF_RELEASES, expected_georef_id, georef_departments, plain
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE
from covid_pipeline_tests.helpers.warehouse import (
    checks_of,
    downstream_of,
    materialized,
    new_database,
    query,
    run_graph,
)

UP_TO_AGGREGATES = [
    "raw_csv_s3",
    "provinces",
    "departments",
    "department_crosswalk",
    "cleaned_cases",
    "daily_aggregates",
]


@pytest.fixture(scope="module", params=sorted(GEOREF_RELEASES))
def real_warehouse(request, pg_server_url, tmp_path_factory):
    """The real registry sample loaded with one real georef release; (url, release name)."""
    folder = tmp_path_factory.mktemp(request.param)
    registry = folder / "Covid19Casos.zip"
    with zipfile.ZipFile(registry, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(REAL_SAMPLE, "Covid19Casos.csv")
    url = new_database(pg_server_url)
    result = run_graph(
        url,
        folder,
        cases=registry,
        provinces=REAL_DATA / "georef_provincias_santif1.csv",
        departments=GEOREF_RELEASES[request.param],
        selection=UP_TO_AGGREGATES,
    )
    assert result.success
    return url, request.param


def specified_places() -> list[tuple[int, int]]:
    """(province, department) of every case of the sample whose department is given, by the csv module."""
    with open(REAL_SAMPLE, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10_075
    places = [(int(r["residencia_provincia_id"]), int(r["residencia_departamento_id"])) for r in rows]
    return [(p, d) for p, d in places if p != 99 and d != 0]


def test_every_case_with_a_department_is_placed_where_georef_has_it(real_warehouse):
    url, release = real_warehouse
    georef = georef_departments(GEOREF_RELEASES[release])
    places = specified_places()
    assert len(places) == 8_400
    expected = Counter(expected_georef_id(p, d, georef) for p, d in places)
    placed = dict(
        query(
            url,
            "SELECT a.georef_department_id, sum(a.notified)::int FROM covid.daily_aggregates a "
            "JOIN covid.departments d ON d.department_id = a.georef_department_id GROUP BY 1",
        )
    )
    assert placed == {g: n for g, n in expected.items() if g is not None}
    share = sum(placed.values()) / len(places)
    assert share >= 0.995, f"{share:.2%} of the cases with a department placed"
    # NULL only where the registry says SIN ESPECIFICAR
    assert query(
        url,
        "SELECT count(*) FROM covid.daily_aggregates WHERE georef_department_id IS NULL "
        "AND province_id <> 99 AND department_id <> 0",
    ) == [(0,)]


def test_placed_departments_are_the_ones_the_registry_names(real_warehouse):
    url, release = real_warehouse
    renamed = {(r["georef_id"], r["registry"], r["georef"]) for r in mapping()["renamed"]}
    pairs = query(
        url,
        "SELECT DISTINCT d.department_id, c.residence_department, d.name FROM covid.cases c "
        "JOIN covid.department_crosswalk x "
        "  ON x.province_id = c.residence_province_id AND x.department_id = c.residence_department_id "
        "JOIN covid.departments d ON d.department_id = x.georef_department_id",
    )
    assert len(pairs) > 200
    differing = {p for p in pairs if plain(p[1]) != plain(p[2])}
    assert differing <= renamed, differing - renamed
    # CABA's COMUNA 07 and 14 would land on Comuna 1 and 2 by the code join: they don't
    names = {registry: georef for _, registry, georef in pairs}
    assert (names["COMUNA 07"], names["COMUNA 14"]) == ("Comuna 7", "Comuna 14")


def test_chascomus_lands_on_the_code_the_georef_release_has(real_warehouse):
    url, release = real_warehouse
    chascomus = {"santif1": 6218, "msastre73": 6217}[release]
    assert query(url, "SELECT name FROM covid.departments WHERE department_id = %s", (chascomus,)) == [
        ("Chascomús",)
    ]
    assert query(
        url,
        "SELECT department_id, georef_department_id FROM covid.department_crosswalk "
        "WHERE province_id = 6 AND department_id IN (217, 218) ORDER BY 1",
    ) == [(217, chascomus), (218, chascomus)]


def test_caba_is_placed_by_the_mapping_file_only(real_warehouse):
    url, _ = real_warehouse
    rows = query(
        url,
        "SELECT x.department_id, d.name FROM covid.department_crosswalk x "
        "JOIN covid.departments d ON d.department_id = x.georef_department_id WHERE x.province_id = 2 ORDER BY 1",
    )
    assert rows == [(n, f"Comuna {n}") for n in range(1, 16)]


def georef_of(release: str) -> dict[int, tuple[int, str]]:
    return {i: (i // 1000, name) for i, name in georef_departments(GEOREF_RELEASES[release]).items()}


def test_an_exception_georef_renumbered_is_left_unplaced_never_guessed():
    georef = georef_of("santif1")
    georef[2007] = (2, "Comuna 7")  # a release numbering the comunas 1..15 as the registry does
    del georef[6218]  # neither Chascomús code
    georef[94007] = (94, "Río Grande")  # Tierra del Fuego's old code back, the new one gone
    del georef[94008]
    rows = {(p, d): (g, reason) for p, d, g, reason in crosswalk_rows(georef)}
    assert rows[(2, 1)] == (
        None,
        "unplaced: georef department 2007 is 'Comuna 7', not 'Comuna 1': the georef release renumbered or "
        "renamed it; update data/department_crosswalk.yaml for it",
    )
    assert (
        rows[(6, 217)][0] is None
        and "none of the georef departments [6218, 6217] (Chascomús)" in rows[(6, 217)][1]
    )
    # the code join is no fallback where the mapping file replaces it: 94007 is not taken on faith
    assert rows[(94, 7)][0] is None and "[94008]" in rows[(94, 7)][1]
    assert rows[(2, 7)][0] == 2049 and rows[(94, 14)][0] == 94015


def test_the_code_join_places_everything_else():
    georef = georef_of("msastre73")
    rows = {(p, d): (g, reason) for p, d, g, reason in crosswalk_rows(georef)}
    code_rule = mapping()["reasons"]["code"]
    for georef_id, (province, _) in georef.items():
        if province != 2 and georef_id != 6217:  # Chascomús: an exception (reason chascomus)
            assert rows[(province, georef_id % 1000)] == (georef_id, code_rule)
    assert rows[(94, 7)][0] == 94008 and rows[(94, 14)][0] == 94015
    assert len(rows) == len(georef) - 15 + 15 + 3  # CABA's 15 replaced; 94007, 94014 and 06218 added


@pytest.fixture(scope="module")
def other_release(pg_server_url, tmp_path_factory):
    """The whole graph, report included, on the bundled sample with a georef release the mapping file was not
    written for: Río Grande (94008) missing, and CABA's Comuna 3 written "Comuna 03". (url, run result)."""
    folder = tmp_path_factory.mktemp("other-release")
    sources = sample_sources()
    lines = Path(sources["COVID_DEPARTMENTS_URL"]).read_text(encoding="utf-8").split("\n")
    lines = [line for line in lines if '"94008"' not in line]
    lines = [line.replace('"Comuna 3","Comuna 3"', '"Comuna 03","Comuna 03"') for line in lines]
    departments = folder / "departamentos.csv"
    departments.write_text("\n".join(lines), encoding="utf-8")
    url = new_database(pg_server_url)
    result = run_graph(
        url, folder, departments=departments, selection=AssetSelection.all(), raise_on_error=False
    )
    return url, result


def test_a_release_the_mapping_file_was_not_written_for_still_builds_everything(other_release):
    url, result = other_release
    assert result.success
    assert downstream_of("department_crosswalk") <= materialized(result)
    assert {"cases_checks", "daily_aggregates", "report"} <= {
        e.step_key for e in result.get_step_success_events()
    }


def test_the_rules_that_no_longer_match_leave_their_departments_unplaced_with_the_reason(
    other_release, sample_warehouse
):
    url, _ = other_release
    unplaced = query(
        url,
        "SELECT province_id, department_id, reason FROM covid.department_crosswalk "
        "WHERE georef_department_id IS NULL ORDER BY 1, 2",
    )
    assert [(p, d) for p, d, _ in unplaced] == [(2, 3), (94, 7)]
    assert "georef department 2021 is 'Comuna 03', not 'Comuna 3'" in unplaced[0][2]
    assert "none of the georef departments [94008]" in unplaced[1][2]
    # their cases are counted, on no department; georef's 2021 ("Comuna 03") gets none of them
    assert query(
        url,
        "SELECT province_id, department_id, georef_department_id, sum(notified)::int FROM covid.daily_aggregates "
        "WHERE (province_id, department_id) IN ((2, 3), (94, 7)) OR georef_department_id = 2021 GROUP BY 1, 2, 3 "
        "ORDER BY 1, 2",
    ) == [(2, 3, None, 72), (94, 7, None, 4)]
    # everything else lands where it lands with the release the file was written for
    placed = (
        "SELECT date, province_id, department_id, georef_department_id, notified FROM covid.daily_aggregates "
        "WHERE (province_id, department_id) NOT IN ((2, 3), (94, 7)) ORDER BY 1, 2, 3"
    )
    assert query(url, placed) == query(sample_warehouse, placed)


def test_a_check_names_each_rule_that_no_longer_matches_and_why(other_release, sample_warehouse):
    _, result = other_release
    check = checks_of(result)["rules_match"]
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    rules = check.metadata["rules_that_no_longer_match"].value
    assert "| 2 | 3 | caba_comuna |" in rules and "'Comuna 03', not 'Comuna 3'" in rules
    assert "| 94 | 7 | tierra_del_fuego |" in rules and "[94008]" in rules
    assert check.metadata["unplaced_rules"].value == 2
    assert check.description.startswith("2 rules of department_crosswalk.yaml no longer match")
    [on_sample] = query(
        sample_warehouse, "SELECT count(*) FROM covid.department_crosswalk WHERE georef_department_id IS NULL"
    )
    assert on_sample == (0,)
