"""covid.department_crosswalk on the real 2020-11-23 registry sample with both real georef releases: every case
with a specified department placed on a covid.departments row, on the department its name says."""

import csv
import zipfile
from collections import Counter

import pytest

from covid_pipeline.assets.crosswalk import crosswalk_rows, mapping
from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline_tests.conftest import REAL_DATA
from covid_pipeline_tests.helpers.places import GEOREF_RELEASES, expected_georef_id, georef_departments, plain
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE
from covid_pipeline_tests.helpers.warehouse import new_database, query, run_graph

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
        folder / "raw",
        str(registry),
        str(REAL_DATA / "georef_provincias_santif1.csv"),
        str(GEOREF_RELEASES[request.param]),
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


def test_a_georef_release_that_renumbers_an_exception_is_refused():
    georef = georef_of("santif1")
    georef[2007] = (2, "Comuna 7")  # a release numbering the comunas 1..15 as the registry does
    with pytest.raises(
        SourceFormatError,
        match=r"department_crosswalk.yaml: province 2, department 1: georef department 2007 is 'Comuna 7'",
    ):
        crosswalk_rows(georef)
    del georef[6218]  # neither Chascomús code
    georef[2007] = (2, "Comuna 1")
    with pytest.raises(SourceFormatError, match=r"province 6, department 217: none of .*6218, 6217"):
        crosswalk_rows(georef)


def test_the_code_join_places_everything_else():
    georef = georef_of("msastre73")
    rows = {(p, d): (g, reason) for p, d, g, reason in crosswalk_rows(georef)}
    code_rule = mapping()["reasons"]["code"]
    for georef_id, (province, _) in georef.items():
        if province != 2 and georef_id != 6217:  # Chascomús: an exception (reason chascomus)
            assert rows[(province, georef_id % 1000)] == (georef_id, code_rule)
    assert rows[(94, 7)][0] == 94008 and rows[(94, 14)][0] == 94015
    assert len(rows) == len(georef) - 15 + 15 + 3  # CABA's 15 replaced; 94007, 94014 and 06218 added
