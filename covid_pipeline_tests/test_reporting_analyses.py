"""The epidemiological marts (positivity, incidence per 100k, notification delays, the onset curve and its nowcast,
case fatality by age band) equal a recount from the registry's CSV (helpers/recount.py), on the real sample and on
a small registry built with the edge cases; and the check on implausible delays counts what the CSV holds."""

from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import psycopg
import pytest

from covid_pipeline.assets.reporting import census_populations
from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.helpers.edge_registry import PUBLISHED, edge_registry
from covid_pipeline_tests.helpers.recount import Registry, ratio
from covid_pipeline_tests.helpers.registry import read_records, write_registry
from covid_pipeline_tests.helpers.warehouse import checks_of, new_database, run_graph

SAMPLE = sample_sources()


@pytest.fixture(scope="module")
def edge(pg_server_url, tmp_path_factory) -> tuple[str, Registry]:
    folder = tmp_path_factory.mktemp("edge")
    path = write_registry(folder / "Covid19Casos.zip", edge_registry())
    url = new_database(pg_server_url)
    run_graph(url, folder, cases=path)
    return url, Registry(path)


@pytest.fixture(scope="module")
def sample(sample_warehouse) -> tuple[str, Registry]:
    return sample_warehouse, Registry(sample_sources()["COVID_CASES_URL"])


@pytest.fixture(params=["edge", "sample"])
def warehouse(request) -> tuple[str, Registry]:
    return request.getfixturevalue(request.param)


def select(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


def province_names() -> dict[int, str]:
    return {int(p["id"]): p["nombre"] for p in read_records(SAMPLE["COVID_PROVINCES_URL"])}


def test_positivity_by_province_and_week(warehouse):
    url, registry = warehouse
    expected = registry.positivity_by_province_week(province_names())
    rows = select(url, "SELECT * FROM reporting.positivity_by_province_week")
    assert {(p, w): (name, c, d, share) for p, name, w, c, d, share in rows} == expected
    national = Counter()
    for (_, week), (_, confirmed, discarded, _) in expected.items():
        national[week, "confirmed"] += confirmed
        national[week, "discarded"] += discarded
    weeks = {week for _, week in expected}
    assert {
        w: (c, d, share) for w, c, d, share in select(url, "SELECT * FROM reporting.positivity_by_week")
    } == {
        w: (c, d, ratio(c, c + d, 4))
        for w in weeks
        for c, d in [(national[w, "confirmed"], national[w, "discarded"])]
    }


def test_positivity_edges(edge):
    url, _ = edge
    cordoba = dict(
        select(
            url,
            "SELECT week_start, positivity FROM reporting.positivity_by_province_week WHERE province_id = 14",
        )
    )
    # 03-01: 5 confirmed and 2 discarded (the suspected case counts in neither); 03-08: discarded only; 03-15: none
    assert (cordoba[date(2021, 3, 1)], cordoba[date(2021, 3, 8)], cordoba[date(2021, 3, 15)]) == (
        Decimal("0.7143"),
        Decimal("0.0000"),
        None,
    )
    # the weeks run from the first notification's Monday to the publication's
    assert select(url, "SELECT min(week_start), max(week_start) FROM reporting.positivity_by_week") == [
        (date(2021, 1, 4), date(2021, 3, 29))
    ]


def test_incidence_per_100k_on_the_census_population(warehouse):
    url, registry = warehouse
    populations = {p["id"]: p["population"] for p in census_populations()}
    expected = registry.incidence_by_province(province_names(), populations)
    rows = select(url, "SELECT * FROM reporting.incidence_by_province")
    assert {p: tuple(rest) for p, *rest in rows} == expected


def test_the_census_populations_are_the_final_results_for_every_georef_province(sample):
    """INDEC's final results of the 2022 census (Resultados definitivos): 45,892,285 residents."""
    url, _ = sample
    populations = {p["id"]: p["population"] for p in census_populations()}
    assert sum(populations.values()) == 45_892_285
    assert (populations[6], populations[2], populations[14], populations[94]) == (
        17_523_996,
        3_121_707,
        3_840_905,
        185_732,
    )
    assert set(populations) == set(province_names())
    assert dict(select(url, "SELECT province_id, population FROM covid.province_population")) == populations


def test_notification_delay_and_its_percentiles(warehouse):
    url, registry = warehouse
    rows = select(url, "SELECT province_id, month, delay_days, cases FROM reporting.notification_delay")
    assert {(p, m, d): n for p, m, d, n in rows} == registry.notification_delay()
    summary = select(url, "SELECT * FROM reporting.notification_delay_summary")
    assert {(p, m): (name, n, median, p90) for p, name, m, n, median, p90 in summary} == (
        registry.notification_delay_summary(province_names())
    )


def test_delays_outside_0_to_30_days_are_left_out_and_counted_by_the_check(edge, sample_run):
    url, _ = edge
    cordoba = select(url, "SELECT delay_days, cases FROM reporting.notification_delay WHERE province_id = 14")
    assert sorted(cordoba) == [(0, 1), (30, 1)]
    # the check's counts, on the sample, against the CSV
    registry = Registry(SAMPLE["COVID_CASES_URL"])
    counts = {
        "plausible": 0,
        "onset_after_notification": 0,
        "over_30_days": 0,
        "no_onset_date": 0,
        "not_in_span": 0,
    }
    for c in registry.confirmed():
        if not registry.in_span(c):
            counts["not_in_span"] += 1
        elif not c["fecha_inicio_sintomas"]:
            counts["no_onset_date"] += 1
        else:
            delay = (
                date.fromisoformat(c["fecha_apertura"]) - date.fromisoformat(c["fecha_inicio_sintomas"])
            ).days
            counts[
                "plausible"
                if 0 <= delay <= 30
                else "onset_after_notification"
                if delay < 0
                else "over_30_days"
            ] += 1
    evaluation = checks_of(sample_run.result)["plausible_notification_delays"]
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    assert {k: metadata[k] for k in counts} == counts
    assert metadata["implausible_delays"] == counts["onset_after_notification"] + counts["over_30_days"]
    assert evaluation.passed  # 51 of 1,586 dated confirmed cases: under the 5% the check allows


def test_the_onset_curve_and_its_nowcast(warehouse):
    url, registry = warehouse
    national = select(url, "SELECT * FROM reporting.epidemic_curve_onset")
    assert {d: tuple(rest) for d, *rest in national} == registry.onset_curve()
    rows = select(url, "SELECT * FROM reporting.epidemic_curve_onset_by_province")
    by_place = {}
    for d, province_id, province, *rest in rows:
        by_place.setdefault((province_id, province), {})[d] = tuple(rest)
    names = province_names() | {None: "Argentina"}
    assert set(by_place) == {
        (p, names.get(p, "Unknown")) for p in [None, *{registry.province(c) for c, _ in registry.plausible()}]
    }
    for (province_id, _), curve in by_place.items():
        assert curve == registry.onset_curve(province_id), province_id


def test_the_last_days_are_incomplete_with_a_nowcast_above_the_count(edge):
    url, _ = edge
    curve = select(
        url,
        "SELECT date, confirmed, complete, nowcast, nowcast_low, nowcast_high FROM reporting.epidemic_curve_onset ORDER BY date",
    )
    incomplete = [r for r in curve if not r[2]]
    assert (
        incomplete
        and incomplete[-1][0] == PUBLISHED
        and all(r[0] > PUBLISHED - timedelta(days=30) for r in incomplete)
    )
    for _, confirmed, _, nowcast, low, high in incomplete:
        assert confirmed <= low <= nowcast <= high and nowcast > confirmed or confirmed == 0
    for _, confirmed, _, nowcast, low, high in (r for r in curve if r[2]):
        assert nowcast == low == high == confirmed
    # Buenos Aires has 120 cases in the window and its own distribution; CABA (20) takes the country's
    by_province = dict(
        select(
            url,
            "SELECT province_id, nowcast FROM reporting.epidemic_curve_onset_by_province "
            f"WHERE date = '{PUBLISHED - timedelta(days=1)}' AND province_id IN (2, 6)",
        )
    )
    assert by_province[2] != by_province[6]


def test_case_fatality_by_age_band_as_a_range(warehouse):
    url, registry = warehouse
    rows = select(url, "SELECT * FROM reporting.case_fatality_by_age_band ORDER BY sort_order")
    assert [r[0] for r in rows] == ["0-19", "20-39", "40-59", "60-79", "80+", "Unknown"]
    assert {band: tuple(rest[:5]) for band, *rest in rows} == registry.case_fatality_by_age_band()
