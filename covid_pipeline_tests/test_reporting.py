"""The reporting views: hand-checked numbers on a small registry loaded through the real pipeline, consistency
on the bundled sample, the read-only metabase_reader role, and views surviving a reload of their tables."""

from datetime import date
from decimal import Decimal

import psycopg
import pytest

from covid_pipeline.assets.reporting import VIEWS
from covid_pipeline.definitions import defs
from covid_pipeline_tests.helpers.registry import REAL_SAMPLE, read_records, row, write_registry
from covid_pipeline_tests.helpers.warehouse import metabase_login, new_database, run_all_assets

PROVINCES = {"06": "Buenos Aires", "02": "CABA", "14": "Córdoba", "99": "SIN ESPECIFICAR"}


def case(case_id, opened, province, sex="F", age="30", status="Confirmado", died=None):
    return row(
        id_evento_caso=str(case_id),
        fecha_apertura=opened,
        residencia_provincia_id=province,
        residencia_provincia_nombre=PROVINCES[province],
        sexo=sex,
        edad=age,
        edad_años_meses="Años",
        clasificacion_resumen=status,
        fallecido="SI" if died else "NO",
        fecha_fallecimiento=died or "",
        ultima_actualizacion="2021-03-20",
    )


# Ten confirmed cases, published 2021-03-20; the latest notification is Monday 2021-03-15, so the last month is
# 2021-02-16 .. 2021-03-15 and the two months' weeks start on Monday 2021-01-11.
HAND_REGISTRY = [
    case(1, "2020-12-30", "06"),
    case(2, "2020-12-31", "06", sex="M", age="45", died="2021-01-05"),
    case(3, "2021-01-10", "02", sex="M", age="85", died="2021-01-20"),  # a Sunday: week of 01-04
    case(4, "2021-01-11", "02", status="Descartado"),
    case(5, "2021-02-14", "06", age="10"),  # the day before the last month
    case(6, "2021-02-16", "14", age="19"),  # its first day
    case(7, "2021-02-20", "06", sex="M", age="20"),
    case(8, "2021-03-01", "99", sex="NR", age="60"),
    case(9, "2021-03-08", "02", age=""),
    case(10, "2021-03-15", "02", sex="M", age="80", died="2021-03-18"),
    case(11, "2021-03-15", "02", status="Sospechoso"),
    case(12, "2021-03-10", "14", age="39", died="2019-01-01"),  # a death date typed wrong
]


@pytest.fixture(scope="module")
def hand_warehouse(pg_server_url, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("hand")
    url = new_database(pg_server_url)
    run_all_assets(url, folder, cases_url=str(write_registry(folder / "Covid19Casos.zip", HAND_REGISTRY)))
    return url


def select(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


def test_latest_update(hand_warehouse):
    assert select(hand_warehouse, "SELECT * FROM reporting.latest_update") == [
        (date(2021, 3, 20), date(2021, 3, 15), date(2020, 12, 30), date(2021, 2, 16), date(2021, 1, 16))
    ]


def test_confirmed_per_year_and_month(hand_warehouse):
    assert select(hand_warehouse, "SELECT * FROM reporting.confirmed_per_year ORDER BY year") == [
        (2020, 2),
        (2021, 8),
    ]
    assert select(hand_warehouse, "SELECT * FROM reporting.confirmed_per_month ORDER BY month") == [
        (date(2020, 12, 1), 2, Decimal("20.00")),
        (date(2021, 1, 1), 1, Decimal("10.00")),
        (date(2021, 2, 1), 3, Decimal("30.00")),
        (date(2021, 3, 1), 4, Decimal("40.00")),
    ]


def test_confirmed_per_week_over_the_last_two_months(hand_warehouse):
    rows = select(
        hand_warehouse,
        "SELECT week_start, confirmed, previous_week_confirmed, change, change_pct, complete_week "
        "FROM reporting.confirmed_per_week ORDER BY week_start",
    )
    assert [r[0] for r in rows] == [
        date(2021, 1, 11) + (date(2021, 1, 18) - date(2021, 1, 11)) * i for i in range(10)
    ]
    assert [r[1:] for r in rows] == [
        (0, 1, -1, Decimal("-100.0"), True),  # the week before (01-04) had case 3
        (0, 0, 0, None, True),
        (0, 0, 0, None, True),
        (0, 0, 0, None, True),
        (1, 0, 1, None, True),  # 02-08: case 5; no change in percent from 0
        (2, 1, 1, Decimal("100.0"), True),
        (0, 2, -2, Decimal("-100.0"), True),
        (1, 0, 1, None, True),
        (2, 1, 1, Decimal("100.0"), True),
        (1, 2, -1, Decimal("-50.0"), False),  # 03-15 .. 03-21: only its Monday is in the data
    ]


def test_last_month_by_sex_age_and_province(hand_warehouse):
    period = (date(2021, 2, 16), date(2021, 3, 15))
    assert select(
        hand_warehouse,
        "SELECT period_start, period_end, sex_code, sex, confirmed, share_pct FROM reporting.last_month_by_sex ORDER BY sort_order",
    ) == [
        (*period, "F", "Female", 3, Decimal("50.00")),
        (*period, "M", "Male", 2, Decimal("33.33")),
        (*period, "NR", "Not recorded", 1, Decimal("16.67")),
    ]
    assert select(
        hand_warehouse,
        "SELECT age_band, confirmed, share_pct FROM reporting.last_month_by_age_band ORDER BY sort_order",
    ) == [
        ("0-19", 1, Decimal("16.67")),
        ("20-39", 2, Decimal("33.33")),
        ("40-59", 0, Decimal("0.00")),
        ("60-79", 1, Decimal("16.67")),
        ("80+", 1, Decimal("16.67")),
        ("Unknown", 1, Decimal("16.67")),
    ]
    assert select(
        hand_warehouse,
        "SELECT period_start, period_end, province, confirmed, share_pct "
        "FROM reporting.last_month_by_province ORDER BY province",
    ) == [
        (*period, "Buenos Aires", 1, Decimal("16.67")),
        (*period, "Ciudad Autónoma de Buenos Aires", 2, Decimal("33.33")),
        (*period, "Córdoba", 2, Decimal("33.33")),
        (*period, "Unknown", 1, Decimal("16.67")),
    ]


def test_case_fatality_by_province(hand_warehouse):
    assert select(
        hand_warehouse, "SELECT * FROM reporting.case_fatality_by_province ORDER BY province_id"
    ) == [
        (2, "Ciudad Autónoma de Buenos Aires", 3, 2, Decimal("66.67")),
        (6, "Buenos Aires", 4, 1, Decimal("25.00")),
        (14, "Córdoba", 2, 1, Decimal("50.00")),  # the death dated 2019 counts here
        (99, "Unknown", 1, 0, Decimal("0.00")),
    ]


def test_epidemic_curves(hand_warehouse):
    curve = {r[0]: r[1:] for r in select(hand_warehouse, "SELECT * FROM reporting.epidemic_curve")}
    # every day from the first notification to the last death inside the registry's dates
    assert min(curve) == date(2020, 12, 30) and max(curve) == date(2021, 3, 18) and len(curve) == 79
    assert sum(c[0] for c in curve.values()) == 10
    assert sum(c[1] for c in curve.values()) == 3  # the death dated 2019 is left out
    # (confirmed, deaths, confirmed 7-day average, deaths 7-day average)
    assert curve[date(2021, 1, 5)] == (
        0,
        1,
        Decimal("0.29"),
        Decimal("0.14"),
    )  # cases 1 and 2 in 12-30..01-05
    assert curve[date(2021, 1, 6)] == (0, 0, Decimal("0.14"), Decimal("0.14"))
    assert curve[date(2021, 1, 13)] == (0, 0, Decimal("0.14"), Decimal("0.00"))  # case 3 (01-10)
    assert curve[date(2021, 1, 17)] == (0, 0, Decimal("0.00"), Decimal("0.00"))
    assert curve[date(2021, 1, 20)] == (0, 1, Decimal("0.00"), Decimal("0.14"))
    assert curve[date(2021, 3, 15)] == (1, 0, Decimal("0.29"), Decimal("0.00"))  # cases 12 (03-10) and 10
    by_province = select(
        hand_warehouse,
        "SELECT province_id, province, count(*), sum(confirmed), sum(deaths) "
        "FROM reporting.epidemic_curve_by_province GROUP BY 1, 2 ORDER BY 1",
    )
    assert by_province == [
        (2, "Ciudad Autónoma de Buenos Aires", 79, 3, 2),
        (6, "Buenos Aires", 79, 4, 1),
        (14, "Córdoba", 79, 2, 0),
        (99, "Unknown", 79, 1, 0),
    ]
    assert select(
        hand_warehouse,
        "SELECT confirmed, deaths, confirmed_7day_avg, deaths_7day_avg FROM reporting.epidemic_curve_by_province "
        "WHERE province_id = 2 AND date = '2021-03-18'",
    ) == [(0, 1, Decimal("0.14"), Decimal("0.14"))]


def test_the_sample_views_agree_with_the_cases(sample_warehouse):
    records = read_records(REAL_SAMPLE)
    first_date = min(r["fecha_apertura"] for r in records if r["fecha_apertura"])
    last_updated = max(r["ultima_actualizacion"] for r in records)
    with psycopg.connect(sample_warehouse) as conn:

        def one(statement, params=None):
            return conn.execute(statement, params).fetchone()[0]

        for view in VIEWS:
            assert one(f"SELECT count(*) FROM reporting.{view}") > 0, view
        confirmed = one(
            "SELECT count(*) FROM covid.cases WHERE classification_summary = 'Confirmado' AND opened_date IS NOT NULL"
        )
        assert confirmed == sum(
            r["clasificacion_resumen"] == "Confirmado" and r["fecha_apertura"] != "" for r in records
        )
        assert one("SELECT sum(confirmed) FROM reporting.confirmed_per_year") == confirmed
        assert one("SELECT sum(confirmed) FROM reporting.confirmed_per_month") == confirmed
        assert one("SELECT sum(confirmed) FROM reporting.epidemic_curve") == confirmed
        assert one("SELECT sum(confirmed) FROM reporting.case_fatality_by_province") == confirmed
        assert one("SELECT round(sum(share_of_total_pct)) FROM reporting.confirmed_per_month") == 100
        in_last_month = one(
            "SELECT count(*) FROM covid.cases, reporting.latest_update u WHERE classification_summary = 'Confirmado' "
            "AND opened_date > u.reference_date - interval '1 month' AND opened_date <= u.reference_date"
        )
        for view in ("last_month_by_sex", "last_month_by_age_band", "last_month_by_province"):
            assert one(f"SELECT sum(confirmed) FROM reporting.{view}") == in_last_month, view
        assert one("SELECT sum(deaths) FROM reporting.case_fatality_by_province") == one(
            "SELECT count(*) FROM covid.cases WHERE classification_summary = 'Confirmado' AND deceased"
        )
        assert one("SELECT sum(deaths) FROM reporting.epidemic_curve") == one(
            "SELECT count(*) FROM covid.cases WHERE classification_summary = 'Confirmado' AND deceased "
            "AND death_date BETWEEN %s AND %s",
            (first_date, last_updated),
        )
        assert one("SELECT last_updated FROM reporting.latest_update") == date.fromisoformat(last_updated)


def test_metabase_reader_reads_the_reporting_views_and_nothing_else(sample_warehouse):
    with metabase_login(sample_warehouse) as reader_url, psycopg.connect(reader_url, autocommit=True) as conn:
        for view in VIEWS:
            conn.execute(f"SELECT * FROM reporting.{view} LIMIT 1").fetchall()
        for table in ("covid.cases", "covid.daily_aggregates", "covid.loads"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM {table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE VIEW reporting.mine AS SELECT 1")


def test_views_and_their_grants_survive_a_reload_of_the_tables_they_read(database_url, tmp_path):
    run_all_assets(database_url, tmp_path, cases_url=str(write_registry(tmp_path / "a.zip", HAND_REGISTRY)))
    bigger = HAND_REGISTRY + [case(13, "2021-03-15", "06")]
    # only the loads: the views are not rebuilt, swap_in has to carry them over
    run_all_assets(
        database_url,
        tmp_path,
        cases_url=str(write_registry(tmp_path / "b.zip", bigger)),
        selection=["raw_csv_s3", "provinces", "cleaned_cases", "daily_aggregates"],
    )
    assert select(database_url, "SELECT * FROM reporting.confirmed_per_year ORDER BY year") == [
        (2020, 2),
        (2021, 9),
    ]
    with metabase_login(database_url) as reader_url:
        assert select(reader_url, "SELECT sum(confirmed) FROM reporting.epidemic_curve") == [(11,)]
        assert select(reader_url, "SELECT count(*) FROM reporting.last_month_by_sex") == [(3,)]


def test_the_reporting_assets_follow_the_tables_they_read():
    graph = defs.resolve_asset_graph()
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["reporting_views"] == {"cleaned_cases", "daily_aggregates", "provinces"}
    assert parents["report"] == {"reporting_views"}
    assert {"reporting_views", "report"} <= {
        k.to_user_string() for k in defs.resolve_job_def("refresh_everything").asset_layer.selected_asset_keys
    }
