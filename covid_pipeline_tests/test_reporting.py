"""The reporting marts: hand-checked numbers on a small registry loaded through the real pipeline, figures on the
bundled sample recounted from its CSV, the read-only metabase_reader role, and grants surviving a reload."""

import csv
import zipfile
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from covid_pipeline.assets.reporting import MARTS
from covid_pipeline.cli import sample_sources
from covid_pipeline.definitions import defs
from covid_pipeline.metabase.provision import load_definition
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline_tests.helpers.places import expected_georef_id, georef_departments
from covid_pipeline_tests.helpers.registry import row, write_registry
from covid_pipeline_tests.helpers.warehouse import metabase_login, new_database, run_graph

SAMPLE = sample_sources()

PROVINCES = {"06": "Buenos Aires", "02": "CABA", "14": "Córdoba", "99": "SIN ESPECIFICAR"}


def case(case_id, opened, province, sex="F", age="30", status="Confirmado", died=None, department="0"):
    return row(
        id_evento_caso=str(case_id),
        fecha_apertura=opened,
        residencia_provincia_id=province,
        residencia_provincia_nombre=PROVINCES[province],
        residencia_departamento_id=department,
        residencia_departamento_nombre="SIN ESPECIFICAR" if department == "0" else f"code {department}",
        sexo=sex,
        edad=age,
        edad_años_meses="Años",
        clasificacion_resumen=status,
        fallecido="SI" if died else "NO",
        fecha_fallecimiento=died or "",
        ultima_actualizacion="2021-03-20",
    )


# Ten confirmed cases, published 2021-03-20 (the latest notification is Monday 2021-03-15): the last month is
# 2021-02-21 .. 2021-03-20 and the two months' weeks start on Monday 2021-01-18 (the week of 2021-01-21).
HAND_REGISTRY = [
    case(1, "2020-12-30", "06", department="217"),  # Chascomús: 06218 in the bundled georef release
    case(2, "2020-12-31", "06", sex="M", age="45", died="2021-01-05", department="427"),  # La Matanza
    case(
        3, "2021-01-10", "02", sex="M", age="85", died="2021-01-20", department="007"
    ),  # a Sunday: week of 01-04
    case(4, "2021-01-11", "02", status="Descartado", department="014"),
    case(5, "2021-02-14", "06", age="10", department="427"),
    case(6, "2021-02-16", "14", age="19", department="014"),  # Córdoba's Capital
    case(7, "2021-02-20", "06", sex="M", age="20"),  # the day before the last month
    case(8, "2021-03-01", "99", sex="NR", age="60"),
    case(9, "2021-03-08", "02", age="", department="014"),  # COMUNA 14: georef 02098, not 02014 (Comuna 2)
    case(10, "2021-03-15", "02", sex="M", age="80", died="2021-03-18"),  # CABA, comuna not recorded
    case(11, "2021-03-15", "02", status="Sospechoso", department="001"),
    case(12, "2021-03-10", "14", age="39", died="2019-01-01", department="014"),  # a death date typed wrong
]


@pytest.fixture(scope="module")
def hand_warehouse(pg_server_url, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("hand")
    url = new_database(pg_server_url)
    run_graph(url, folder, cases=write_registry(folder / "Covid19Casos.zip", HAND_REGISTRY))
    return url


def select(url: str, statement: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(statement).fetchall()


def test_latest_update(hand_warehouse):
    assert select(hand_warehouse, "SELECT * FROM reporting.latest_update") == [
        (
            date(2021, 3, 20),  # last_updated: the publication
            date(2021, 3, 20),  # reference_date: the windows end on the publication
            date(2020, 12, 30),  # first_date
            date(2021, 3, 15),  # last_notification_date
            date(2021, 2, 21),  # last_month_start
            date(2021, 1, 21),  # last_two_months_start
        )
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
    assert [r[0] for r in rows] == [date(2021, 1, 18) + timedelta(weeks=i) for i in range(9)]
    assert [r[1:] for r in rows] == [
        (0, 0, 0, None, True),  # 01-18: the week before (01-11) had no case either
        (0, 0, 0, None, True),
        (0, 0, 0, None, True),
        (1, 0, 1, None, True),  # 02-08: case 5; no change in percent from 0
        (2, 1, 1, Decimal("100.0"), True),
        (0, 2, -2, Decimal("-100.0"), True),
        (1, 0, 1, None, True),
        (2, 1, 1, Decimal("100.0"), True),
        (1, 2, -1, Decimal("-50.0"), False),  # 03-15 .. 03-21: the publication (03-20) cuts it short
    ]


def test_last_month_by_sex_age_and_province(hand_warehouse):
    period = (date(2021, 2, 21), date(2021, 3, 20))
    assert select(
        hand_warehouse,
        "SELECT period_start, period_end, sex_code, sex, confirmed, share_pct FROM reporting.last_month_by_sex ORDER BY sort_order",
    ) == [
        (*period, "F", "Female", 2, Decimal("50.00")),
        (*period, "M", "Male", 1, Decimal("25.00")),
        (*period, "NR", "Not recorded", 1, Decimal("25.00")),
    ]
    assert select(
        hand_warehouse,
        "SELECT age_band, confirmed, share_pct FROM reporting.last_month_by_age_band ORDER BY sort_order",
    ) == [
        ("0-19", 0, Decimal("0.00")),
        ("20-39", 1, Decimal("25.00")),
        ("40-59", 0, Decimal("0.00")),
        ("60-79", 1, Decimal("25.00")),
        ("80+", 1, Decimal("25.00")),
        ("Unknown", 1, Decimal("25.00")),
    ]
    by_province = select(
        hand_warehouse,
        "SELECT period_start, period_end, province, confirmed, share_pct "
        "FROM reporting.last_month_by_province ORDER BY province",
    )
    assert [r for r in by_province if r[3]] == [
        (*period, "Ciudad Autónoma de Buenos Aires", 2, Decimal("50.00")),
        (*period, "Córdoba", 1, Decimal("25.00")),
        (*period, "Unknown", 1, Decimal("25.00")),
    ]
    # every georef province is listed, with 0 when it had no case (Buenos Aires: its last case is the day before)
    assert len(by_province) == 25 and (*period, "Buenos Aires", 0, Decimal("0.00")) in by_province


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
    # every day from the first notification to the publication
    assert min(curve) == date(2020, 12, 30) and max(curve) == date(2021, 3, 20) and len(curve) == 81
    # the first six days have no six days before them: no 7-day average
    assert [curve[date(2020, 12, 30) + timedelta(days=d)][2:] for d in range(7)] == [(None, None)] * 6 + [
        (Decimal("0.29"), Decimal("0.14"))
    ]
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
        (2, "Ciudad Autónoma de Buenos Aires", 81, 3, 2),
        (6, "Buenos Aires", 81, 4, 1),
        (14, "Córdoba", 81, 2, 0),
        (99, "Unknown", 81, 1, 0),
    ]
    assert select(
        hand_warehouse,
        "SELECT confirmed, deaths, confirmed_7day_avg, deaths_7day_avg FROM reporting.epidemic_curve_by_province "
        "WHERE province_id = 2 AND date = '2021-03-18'",
    ) == [(0, 1, Decimal("0.14"), Decimal("0.14"))]


def test_the_windows_and_curves_derive_from_the_publication_not_from_the_data(database_url, tmp_path):
    """A row dated far in the future (or past) is a typing error: it moves no window and stretches no curve."""
    typos = [case(13, "2100-12-31", "06", department="427"), case(14, "1999-01-01", "02")]
    registry = write_registry(tmp_path / "Covid19Casos.zip", HAND_REGISTRY + typos)
    # whether the load keeps or rejects the typos (2 rows of 14), the marts must not follow them
    result = run_graph(
        database_url, tmp_path, cases=registry, quality=QualityResource(max_rejected_share=1.0)
    )
    assert result.success
    assert select(database_url, "SELECT * FROM reporting.latest_update") == [
        (
            date(2021, 3, 20),
            date(2021, 3, 20),
            date(2020, 12, 30),
            date(2021, 3, 15),
            date(2021, 2, 21),
            date(2021, 1, 21),
        )
    ]
    assert select(database_url, "SELECT min(date), max(date), count(*) FROM reporting.epidemic_curve") == [
        (date(2020, 12, 30), date(2021, 3, 20), 81)
    ]
    assert select(database_url, "SELECT sum(confirmed) FROM reporting.last_month_by_sex") == [(4,)]
    assert select(database_url, "SELECT max(week_start) FROM reporting.confirmed_per_week") == [
        (date(2021, 3, 15),)
    ]
    assert select(database_url, "SELECT * FROM reporting.confirmed_per_year ORDER BY year") == [
        (2020, 2),
        (2021, 8),
    ]
    assert select(database_url, "SELECT min(month), max(month) FROM reporting.confirmed_per_month") == [
        (date(2020, 12, 1), date(2021, 3, 1))
    ]
    # the maps and fatality rates still count every confirmed case loaded, wherever its date
    assert select(database_url, "SELECT sum(confirmed) FROM reporting.case_fatality_by_province") == select(
        database_url, "SELECT count(*) FROM covid.cases WHERE classification_summary = 'Confirmado'"
    )


def georef_centroids(path: str, key: str = "id") -> dict[int, tuple[float, float]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return {
            int(r[key]): (float(r["centroide_lat"]), float(r["centroide_lon"]))
            for r in csv.DictReader(handle)
        }


def test_the_maps(hand_warehouse):
    departments = georef_centroids(SAMPLE["COVID_DEPARTMENTS_URL"])
    provinces = georef_centroids(SAMPLE["COVID_PROVINCES_URL"])
    published = date(2021, 3, 20)
    # (confirmed, deaths) per georef department, counted by hand from HAND_REGISTRY
    assert select(
        hand_warehouse,
        "SELECT georef_department_id, department, confirmed, deaths, latitude, longitude, registry_date "
        "FROM reporting.map_by_department ORDER BY georef_department_id",
    ) == [
        (2049, "Comuna 7", 1, 1, *departments[2049], published),
        (2098, "Comuna 14", 1, 0, *departments[2098], published),
        (6218, "Chascomús", 1, 0, *departments[6218], published),
        (6427, "La Matanza", 2, 1, *departments[6427], published),
        (14014, "Capital", 2, 1, *departments[14014], published),
    ]
    # per province: confirmed, deaths, and of them those placed on a department; province 99 has no place
    assert select(
        hand_warehouse,
        "SELECT province_id, confirmed, deaths, confirmed_placed, deaths_placed, latitude, longitude, registry_date "
        "FROM reporting.map_by_province ORDER BY province_id",
    ) == [
        (2, 3, 2, 2, 1, *provinces[2], published),
        (6, 4, 1, 3, 1, *provinces[6], published),
        (14, 2, 1, 2, 1, *provinces[14], published),
    ]


def sample_cases() -> list[dict]:
    """The bundled registry's cases, read with the csv module (the last row of an id wins, as in the loader)."""
    with zipfile.ZipFile(SAMPLE["COVID_CASES_URL"]) as archive:
        rows = csv.DictReader(archive.read("Covid19Casos.csv").decode("utf-8").splitlines())
        return list({r["id_evento_caso"]: r for r in rows}.values())


def month_before(day: date) -> date:
    """`day - interval '1 month'` as PostgreSQL computes it (the day of month clamped to the shorter month)."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError(day)


def age_band(age: str) -> str:
    if age == "":
        return "Unknown"
    years = int(age)
    return next(
        (b for b, top in (("0-19", 20), ("20-39", 40), ("40-59", 60), ("60-79", 80)) if years < top), "80+"
    )


def test_the_sample_marts_agree_with_the_csv(sample_warehouse):
    cases = sample_cases()
    confirmed = [r for r in cases if r["clasificacion_resumen"] == "Confirmado"]
    dated = [r for r in confirmed if r["fecha_apertura"]]
    # the publication: the registry's most common ultima_actualizacion (every row of the sample has the same)
    [(published, _)] = Counter(r["ultima_actualizacion"] for r in cases).most_common(1)
    reference = date.fromisoformat(published)
    start = month_before(reference) + timedelta(days=1)
    last_month = [r for r in dated if start <= date.fromisoformat(r["fecha_apertura"]) <= reference]
    deaths = [r for r in confirmed if r["fallecido"] == "SI"]
    with psycopg.connect(sample_warehouse) as conn:

        def rows(statement):
            return conn.execute(statement).fetchall()

        for mart in MARTS:
            assert rows(f"SELECT count(*) FROM reporting.{mart}")[0][0] > 0, mart
        notified = sorted(date.fromisoformat(r["fecha_apertura"]) for r in cases if r["fecha_apertura"])
        assert rows(
            "SELECT reference_date, last_month_start, first_date, last_notification_date FROM reporting.latest_update"
        ) == [(reference, start, notified[0], notified[-1])]
        assert rows("SELECT sum(confirmed) FROM reporting.confirmed_per_year") == [(len(dated),)]
        assert rows("SELECT sum(confirmed) FROM reporting.epidemic_curve") == [(len(dated),)]
        sexes = Counter(r["sexo"] if r["sexo"] in ("F", "M") else "NR" for r in last_month)
        assert dict(rows("SELECT sex_code, confirmed FROM reporting.last_month_by_sex")) == {
            code: sexes[code] for code in ("F", "M", "NR")
        }
        bands = Counter(age_band(r["edad"]) for r in last_month)
        assert dict(rows("SELECT age_band, confirmed FROM reporting.last_month_by_age_band")) == {
            band: bands[band] for band in ("0-19", "20-39", "40-59", "60-79", "80+", "Unknown")
        }
        # deaths by date of death inside the registry's dates (first notification .. ultima_actualizacion)
        first = min(date.fromisoformat(r["fecha_apertura"]) for r in cases if r["fecha_apertura"])
        in_span = [
            r
            for r in deaths
            if r["fecha_fallecimiento"]
            and first <= date.fromisoformat(r["fecha_fallecimiento"])
            and date.fromisoformat(r["fecha_fallecimiento"]) <= reference
        ]
        by_day = Counter(date.fromisoformat(r["fecha_fallecimiento"]) for r in in_span)
        assert dict(rows("SELECT date, deaths FROM reporting.epidemic_curve WHERE deaths > 0")) == by_day
        by_province = Counter((int(r["residencia_provincia_id"]), r["fecha_fallecimiento"]) for r in in_span)
        assert (
            Counter(
                {
                    (p, d.isoformat()): n
                    for p, d, n in rows(
                        "SELECT province_id, date, deaths FROM reporting.epidemic_curve_by_province WHERE deaths > 0"
                    )
                }
            )
            == by_province
        )
        # the maps: per province, and per georef department (placed by the rules, worked out independently)
        per_province = Counter()
        for r in confirmed:
            per_province[int(r["residencia_provincia_id"]), "confirmed"] += 1
            per_province[int(r["residencia_provincia_id"]), "deaths"] += r["fallecido"] == "SI"
        for province, confirmed_, deaths_ in rows(
            "SELECT province_id, confirmed, deaths FROM reporting.map_by_province"
        ):
            assert (confirmed_, deaths_) == (
                per_province[province, "confirmed"],
                per_province[province, "deaths"],
            )
        georef = georef_departments(Path(SAMPLE["COVID_DEPARTMENTS_URL"]))
        placed = Counter(
            expected_georef_id(
                int(r["residencia_provincia_id"]), int(r["residencia_departamento_id"]), georef
            )
            for r in confirmed
        )
        placed.pop(None)
        assert dict(rows("SELECT georef_department_id, confirmed FROM reporting.map_by_department")) == placed
        assert rows("SELECT sum(confirmed_placed) FROM reporting.map_by_province") == [
            (sum(placed.values()),)
        ]


def test_metabase_reader_reads_the_marts_and_nothing_else(sample_warehouse):
    with metabase_login(sample_warehouse) as reader_url, psycopg.connect(reader_url, autocommit=True) as conn:
        for mart in MARTS:
            conn.execute(f"SELECT * FROM reporting.{mart} LIMIT 1").fetchall()
        covid_tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'covid'").fetchall()
        assert {"cases", "daily_aggregates", "case_breakdown", "department_crosswalk"} <= {
            t for (t,) in covid_tables
        }
        for (table,) in covid_tables:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT count(*) FROM covid.{table}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("CREATE VIEW reporting.mine AS SELECT 1")


def test_every_mart_is_on_the_dashboard_and_its_cards_run_as_metabase_reader(sample_warehouse):
    cards = {c["key"]: c["sql"] for c in load_definition()["cards"]}
    assert {m for m in MARTS if not any(f"reporting.{m}" in sql for sql in cards.values())} == set()
    with metabase_login(sample_warehouse) as reader_url, psycopg.connect(reader_url) as conn:
        answers = {key: conn.execute(sql).fetchall() for key, sql in cards.items()}
    assert all(answers.values())
    # the curves stop with the sample's notifications (1-3 June), not at its publication (23 November)
    for key in ("curve_confirmed", "curve_deaths", "province_curves", "onset_curve", "onset_by_province"):
        assert max(row[0] for row in answers[key]) == date(2020, 6, 3), key


def test_marts_follow_a_new_load_and_keep_their_grants(database_url, tmp_path):
    run_graph(database_url, tmp_path, cases=write_registry(tmp_path / "a.zip", HAND_REGISTRY))
    with psycopg.connect(database_url, autocommit=True) as conn:  # a grant given by hand survives too
        conn.execute("CREATE ROLE analyst_marts_test")
        conn.execute("GRANT USAGE ON SCHEMA reporting TO analyst_marts_test")
        conn.execute("GRANT SELECT ON reporting.epidemic_curve TO analyst_marts_test")
    try:
        bigger = HAND_REGISTRY + [case(13, "2021-03-15", "06", department="427")]
        run_graph(database_url, tmp_path, cases=write_registry(tmp_path / "b.zip", bigger))
        assert select(database_url, "SELECT * FROM reporting.confirmed_per_year ORDER BY year") == [
            (2020, 2),
            (2021, 9),
        ]
        with metabase_login(database_url) as reader_url, psycopg.connect(reader_url) as conn:
            for mart in MARTS:
                conn.execute(f"SELECT * FROM reporting.{mart}").fetchall()
            assert conn.execute("SELECT sum(confirmed) FROM reporting.epidemic_curve").fetchall() == [(11,)]
            assert conn.execute(
                "SELECT confirmed FROM reporting.map_by_department WHERE georef_department_id = 6427"
            ).fetchall() == [(3,)]
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT count(*) FROM covid.case_breakdown")
        assert select(
            database_url,
            "SELECT has_table_privilege('analyst_marts_test', 'reporting.epidemic_curve', 'SELECT')",
        ) == [(True,)]
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP OWNED BY analyst_marts_test")
            conn.execute("DROP ROLE analyst_marts_test")


def test_a_reporting_layer_of_views_is_replaced_by_the_marts(database_url, tmp_path):
    """A warehouse built by the previous version (views in reporting) upgrades in place."""
    run_graph(database_url, tmp_path, cases=write_registry(tmp_path / "a.zip", HAND_REGISTRY))
    with psycopg.connect(database_url) as conn:
        conn.execute("DROP TABLE reporting.epidemic_curve, reporting.latest_update")
        conn.execute("CREATE VIEW reporting.latest_update AS SELECT 1 AS old")
        conn.execute("CREATE VIEW reporting.epidemic_curve AS SELECT * FROM reporting.latest_update")
    run_graph(database_url, tmp_path, cases=write_registry(tmp_path / "a.zip", HAND_REGISTRY))
    assert select(
        database_url,
        "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'reporting'::regnamespace "
        "AND relname IN ('latest_update', 'epidemic_curve') ORDER BY 1",
    ) == [("epidemic_curve", "r"), ("latest_update", "r")]
    assert select(database_url, "SELECT sum(confirmed) FROM reporting.epidemic_curve") == [(10,)]


def test_each_mart_is_an_asset_after_the_tables_it_reads():
    graph = defs.resolve_asset_graph()
    parents = {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }
    assert parents["covid/case_breakdown"] == {"cleaned_cases"}
    assert parents["reporting/last_month_by_sex"] == {"covid/case_breakdown", "reporting/latest_update"}
    assert parents["reporting/epidemic_curve"] == {"reporting/epidemic_curve_by_province"}
    assert parents["reporting/map_by_department"] == {
        "daily_aggregates",
        "departments",
        "provinces",
        "reporting/latest_update",
    }
    assert parents["daily_aggregates"] == {"cleaned_cases", "department_crosswalk"}
    assert parents["report"] == {f"reporting/{m}" for m in MARTS} | {"codebook"}
    assert parents["exports"] == {f"reporting/{m}" for m in MARTS}
    assert parents["reporting/incidence_by_province"] == {
        "daily_aggregates",
        "provinces",
        "covid/province_population",
    }
    job = defs.resolve_job_def("refresh_everything").asset_layer.selected_asset_keys
    assert {f"reporting/{m}" for m in MARTS} | {"report", "codebook", "exports", "department_crosswalk"} <= {
        k.to_user_string() for k in job
    }
