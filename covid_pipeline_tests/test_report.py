"""The report asset: a self-contained HTML page with its charts embedded, written to a folder or to S3."""

import base64
import calendar
import io
from collections import Counter
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import boto3
import psycopg
import yaml
from dagster import AssetSelection
from PIL import Image

from covid_pipeline.assets import charts
from covid_pipeline.assets.aggregates import build_daily_aggregates
from covid_pipeline.assets.report import fatality_chart, load_analyses
from covid_pipeline.assets.reporting import build_marts
from covid_pipeline.cli import sample_sources
from covid_pipeline_tests.helpers.edge_registry import edge_registry
from covid_pipeline_tests.helpers.recount import ratio
from covid_pipeline_tests.helpers.registry import read_records, row, write_registry
from covid_pipeline_tests.helpers.warehouse import metadata_of, run_graph

PNG_PREFIX = "data:image/png;base64,"
DATA = Path(__file__).resolve().parents[1] / "covid_pipeline" / "data"


class Page(HTMLParser):
    """The parts of the page a reader relies on: images, headings, text, and each table (its rows of cell texts)
    under the heading it follows."""

    def __init__(self, html: str):
        super().__init__()
        self.images: list[dict] = []
        self.links: list[str] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._heading = False
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        if tag == "a":
            self.links.append(dict(attrs)["href"])
        if tag == "table":
            self.tables[self.headings[-1]] = []
        if tag == "tr":
            self.tables[self.headings[-1]].append([])
        if tag in ("td", "th"):
            self._cell = []
        self._heading = tag in ("h1", "h2", "h3")

    def handle_endtag(self, tag):
        self._heading = False
        if tag in ("td", "th"):
            self.tables[self.headings[-1]][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if self._heading and data.strip():
            self.headings.append(data.strip())


def decoded_png(src: str) -> Image.Image:
    assert src.startswith(PNG_PREFIX)
    image = Image.open(io.BytesIO(base64.b64decode(src[len(PNG_PREFIX) :], validate=True)))
    image.load()
    assert image.format == "PNG"
    return image


def report_of(result) -> dict:
    """The report's metadata in a run that built it."""
    assert result.success
    return metadata_of(result, "report")


def test_the_report_shows_every_analysis_with_its_charts(sample_warehouse, tmp_path):
    metadata = report_of(run_graph(sample_warehouse, tmp_path, selection=["report"]))
    dated = tmp_path / "reports" / "report-2020-11-23.html"
    assert metadata["report_uri"] == str(dated)
    html = dated.read_text(encoding="utf-8")
    assert (tmp_path / "reports" / "latest.html").read_text(encoding="utf-8") == html
    page = Page(html)
    assert page.headings[:2] == ["COVID-19 in Argentina: confirmed cases and deaths", "Epidemic curve"]
    for heading in (
        "By date of symptom onset, with the days still being notified",
        "Notification delays",
        "Test positivity",
        "Rates per 100,000 residents",
        "Confirmed cases per year",
        "Confirmed cases per month",
        "The last two months, week by week",
        "Case fatality rate per province",
        "Case fatality rate by age",
    ):
        assert heading in page.headings
    # the figures, against a recount of the registry and georef files with the csv module
    recount = Recount(sample_sources())
    start, end = recount.last_month
    assert f"The last month: {start:%d %b %Y} – {end:%d %b %Y}" in page.headings
    # a chart per analysis with cases, each a real PNG of a readable size, each described for screen readers: the
    # sample's cases were all notified on 1-3 June, so the windows ending on its publication (23 Nov) are empty
    alts = [image["alt"] for image in page.images]
    assert [alt.split(":")[0].split(",")[0] for alt in alts] == [
        "Confirmed cases and deaths per day in Argentina",
        "Map of Argentina",
        "Confirmed cases per day of symptom onset; the last days",
        "Confirmed cases per number of days from symptom onset to notification; median 3 days",
        "Share of the cases classified each week that were confirmed",
        "Map of Argentina",
        "Confirmed cases per month",
        "7-day average of confirmed cases per day",
        "Case fatality rate per province",
        "Case fatality rate per age band",
    ]
    for image in page.images:
        width, height = decoded_png(image["src"]).size
        assert width > 300 and height > 100 and image["alt"]
    # the curve ends with the notifications (not at the publication); the maps are dated with the publication
    assert alts[0].endswith("01 Jun 2020 to 03 Jun 2020")
    assert (
        alts[1]
        == "Map of Argentina: confirmed cases and deaths per department of residence, registry of 23 Nov 2020"
    )
    assert alts[5] == (
        "Map of Argentina: confirmed cases and deaths per 100,000 residents of each province, registry of 23 Nov 2020"
    )
    assert "The 10 departments with most confirmed cases" in page.headings
    text = " ".join(" ".join(page.text).split())
    assert f"{len(recount.confirmed):,} confirmed cases" in text
    assert "Cases notified from 01 Jun 2020 to 03 Jun 2020" in text
    # the page says the file is an extract, not the epidemic's end
    assert (
        "This file holds part of the registry. Its last notification is on 03 Jun 2020, 173 days before"
        in text
    )
    assert "No case notified in the month before the publication" in text
    assert page.links.count("codebook.md") == 2  # the data dictionary, beside the report
    assert page.tables["Confirmed cases per year"][1:] == [
        [year, f"{n:,}"]
        for year, n in sorted(Counter(r["fecha_apertura"][:4] for r in recount.confirmed).items())
    ]
    fatality = {row[0]: (row[1], row[2]) for row in page.tables["Case fatality rate per province"][1:]}
    assert fatality == recount.fatality_by_province()
    positivity = {row[0]: tuple(row[1:]) for row in page.tables["Test positivity"][1:]}
    assert positivity == recount.positivity_by_province()
    incidence = {row[0]: tuple(row[1:]) for row in page.tables["Rates per 100,000 residents"][1:]}
    assert incidence == recount.incidence_by_province()
    # the epidemic curve is in the asset's metadata as an image the Dagster UI renders
    markdown = metadata["epidemic_curve"]
    assert markdown.startswith("![epidemic curve](" + PNG_PREFIX) and markdown.endswith(")")
    decoded_png(markdown[len("![epidemic curve](") : -1])


SEXES = (("F", "Female"), ("M", "Male"), ("NR", "Not recorded"))


class Recount:
    """What the report should say, counted from the source files themselves."""

    def __init__(self, sources: dict):
        self.records = read_records(Path(sources["COVID_CASES_URL"]))
        self.provinces = {
            int(p["id"]): p["nombre"] for p in read_records(Path(sources["COVID_PROVINCES_URL"]))
        }
        self.confirmed = [r for r in self.records if r["clasificacion_resumen"] == "Confirmado"]
        self.last_updated = max(date.fromisoformat(r["ultima_actualizacion"]) for r in self.records)

    @staticmethod
    def opened(record) -> date:
        return date.fromisoformat(record["fecha_apertura"])

    @property
    def last_month(self) -> tuple[date, date]:
        """(reference_date - 1 month, reference_date], reference_date the publication."""
        end = self.last_updated
        year, month = (end.year, end.month - 1) if end.month > 1 else (end.year - 1, 12)
        return date(year, month, min(end.day, calendar.monthrange(year, month)[1])) + timedelta(days=1), end

    def name(self, record) -> str:
        return self.provinces.get(int(record["residencia_provincia_id"]), "Unknown")

    def positivity_by_province(self) -> dict[str, tuple[str, str, str]]:
        counts = Counter((self.name(r), r["clasificacion_resumen"]) for r in self.records)
        return {
            name: (f"{c:,}", f"{d:,}", f"{ratio(c, c + d, 1, 100)}%")
            for name in {n for n, _ in counts}
            for c, d in [(counts[name, "Confirmado"], counts[name, "Descartado"])]
            if c + d
        }

    def incidence_by_province(self) -> dict[str, tuple[str, ...]]:
        populations = {
            p["id"]: p["population"]
            for p in yaml.safe_load((DATA / "province_population.yaml").read_text(encoding="utf-8"))[
                "provinces"
            ]
        }
        confirmed = Counter(int(r["residencia_provincia_id"]) for r in self.confirmed)
        deaths = Counter(int(r["residencia_provincia_id"]) for r in self.confirmed if r["fallecido"] == "SI")
        table = {}
        for province in set(populations) | set(confirmed):
            population = populations.get(province)
            per_100k = [
                f"{ratio(n, population, 2, 100_000):,}" if population else "–"
                for n in (confirmed[province], deaths[province])
            ]
            table[self.provinces.get(province, "Unknown")] = (
                f"{population:,}" if population else "–",
                f"{confirmed[province]:,}",
                per_100k[0],
                f"{deaths[province]:,}",
                per_100k[1],
            )
        return table

    def fatality_by_province(self) -> dict[str, tuple[str, str]]:
        confirmed, deaths = Counter(), Counter()
        for r in self.confirmed:
            name = self.provinces.get(int(r["residencia_provincia_id"]), "Unknown")
            confirmed[name] += 1
            deaths[name] += r["fallecido"] == "SI"
        return {name: (f"{n:,}", f"{deaths[name]:,}") for name, n in confirmed.items()}


def test_the_report_is_published_to_s3(sample_warehouse, s3_bucket, tmp_path):
    metadata = report_of(
        run_graph(sample_warehouse, tmp_path, selection=["report"], reports_store=f"s3://{s3_bucket}/reports")
    )
    assert metadata["report_uri"] == f"s3://{s3_bucket}/reports/report-2020-11-23.html"
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["reports/latest.html", "reports/report-2020-11-23.html"]
    published = s3.get_object(Bucket=s3_bucket, Key="reports/latest.html")
    assert published["ContentType"].startswith("text/html")
    assert len(Page(published["Body"].read().decode("utf-8")).images) == 10


def test_a_registry_without_confirmed_cases_gives_a_report_that_says_so(database_url, tmp_path):
    registry = write_registry(
        tmp_path / "Covid19Casos.zip",
        [row(id_evento_caso=str(i), clasificacion_resumen="Descartado", fallecido="NO") for i in (1, 2)],
    )
    run_graph(database_url, tmp_path, cases=registry, selection=AssetSelection.all())
    page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
    # two tests that ruled COVID-19 out: a positivity of 0%, and nothing else to draw
    assert [image["alt"].split(",")[0] for image in page.images] == [
        "Share of the cases classified each week that were confirmed"
    ]
    assert "No confirmed cases in the data." in " ".join(page.text)
    assert page.tables["Test positivity"][1:] == [["Formosa", "0", "2", "0.0%"]]


def test_a_first_load_without_any_row_gives_a_report_that_says_so(database_url, tmp_path):
    registry = write_registry(tmp_path / "Covid19Casos.zip", [])  # the header alone
    run_graph(database_url, tmp_path, cases=registry, selection=AssetSelection.all())
    html = (tmp_path / "reports" / "report-undated.html").read_text(encoding="utf-8")
    page = Page(html)
    assert page.images == []
    text = " ".join(" ".join(page.text).split())
    assert (
        "No case has been loaded: the registry's last load holds no row, so there is nothing to report."
        in text
    )
    assert (tmp_path / "reports" / "latest.html").read_text(encoding="utf-8") == html


def test_a_registry_without_notification_dates_gives_a_report_without_time_series(sample_copy, tmp_path):
    """Every fecha_apertura empty: the marts allow it (the load may refuse such a file), the report must too."""
    with psycopg.connect(sample_copy) as conn:
        conn.execute("UPDATE covid.cases SET opened_date = NULL")
        build_daily_aggregates(conn)
        build_marts(conn)
    report_of(run_graph(sample_copy, tmp_path, selection=["report"]))
    page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
    text = " ".join(" ".join(page.text).split())
    assert (
        "None of its cases has a notification date (fecha_apertura) in 2020 or later up to the publication"
        in text
    )
    # what needs no date is still there: the maps, the rates, case fatality; no curve, no window
    alts = [image["alt"].split(":")[0].split(",")[0] for image in page.images]
    assert alts == ["Map of Argentina", "Case fatality rate per province", "Case fatality rate per age band"]
    assert "No case notified in the two months before the publication" in text


def test_names_with_dollar_signs_are_drawn_as_written(database_url, tmp_path):
    """Matplotlib reads text between two $ as TeX: a province named so must neither break nor change a chart."""
    renamed = "Buenos $\\Aires_{x}$"
    provinces = (Path(sample_sources()["COVID_PROVINCES_URL"])).read_text(encoding="utf-8")
    assert '"Buenos Aires"' in provinces
    georef = tmp_path / "provincias.csv"
    georef.write_text(provinces.replace('"Buenos Aires"', f'"{renamed}"'), encoding="utf-8")
    result = run_graph(database_url, tmp_path, provinces=georef, selection=AssetSelection.all())
    assert result.success
    page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
    assert renamed in [row[0] for row in page.tables["Case fatality rate per province"]]
    # on the charts, the name is drawn as written, not as TeX
    with psycopg.connect(database_url) as conn:
        data = load_analyses(conn)
    figure = charts.horizontal_bars_figure(*fatality_chart(data))
    assert [label.get_text() for label in figure.axes[0].get_yticklabels()].count(charts.text(renamed)) == 1
    assert figure.axes[0].get_yticklabels()[0]._preprocess_math(charts.text(renamed)) == (renamed, False)


def test_the_fatality_chart_and_table_round_alike(database_url, tmp_path):
    """3 deaths of 69 confirmed cases is 4.3478%: 4.3% in the table and on the chart (rounding 4.35 again gave 4.4%)."""
    cases = [row(id_evento_caso=str(i), fallecido="SI" if i <= 3 else "NO") for i in range(1, 70)]
    registry = write_registry(tmp_path / "Covid19Casos.zip", cases)
    run_graph(database_url, tmp_path, cases=registry, selection=AssetSelection.all())
    page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
    assert page.tables["Case fatality rate per province"][1:] == [["Formosa", "69", "3", "4.3%"]]
    with psycopg.connect(database_url) as conn:
        data = load_analyses(conn)
    figure = charts.horizontal_bars_figure(*fatality_chart(data))
    assert [t.get_text() for t in figure.axes[0].texts] == ["4.3%"]
    assert "Case fatality rate per province: Formosa 4.3%" in [image["alt"] for image in page.images]


def test_the_days_still_being_notified_are_drawn_apart_with_their_nowcast(database_url, tmp_path):
    registry = write_registry(tmp_path / "Covid19Casos.zip", edge_registry())
    run_graph(database_url, tmp_path, cases=registry, selection=AssetSelection.all())
    page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
    with psycopg.connect(database_url) as conn:
        [(days, first, so_far, expected)] = conn.execute(
            "SELECT count(*), min(date), sum(confirmed), round(sum(nowcast)) FROM reporting.epidemic_curve_onset "
            "WHERE NOT complete"
        ).fetchall()
    assert days > 1 and expected > so_far
    text = " ".join(" ".join(page.text).split())
    assert (
        f"The last {days} days, from {first:%d %b %Y}, are still being notified: their {so_far} cases so far "
        f"should become about {expected}." in text
    )
    assert (
        "Confirmed cases per day of symptom onset; the last days, still being notified, with a nowcast"
        in [image["alt"].split(" and its")[0] for image in page.images]
    )


def test_the_extract_notice_comes_past_a_week_and_counts_the_deaths_it_does_not_draw(database_url, tmp_path):
    """Notifications that end more than a week before the publication: the page says how many days, and how
    many deaths dated later are counted but not drawn. A week or less is a whole registry: no notice."""

    def report_for(last_notified: str, name: str) -> str:
        cases = [
            row(id_evento_caso="1", fecha_apertura="2020-11-10"),
            row(id_evento_caso="2", fecha_apertura=last_notified),
            *(
                row(
                    id_evento_caso=str(i),
                    fecha_apertura="2020-11-10",
                    fallecido="SI",
                    fecha_fallecimiento=died,
                )
                for i, died in ((3, "2020-11-12"), (4, "2020-11-20"), (5, "2020-11-21"))
            ),
        ]
        assert {r["ultima_actualizacion"] for r in cases} == {"2020-11-23"}
        registry = write_registry(tmp_path / name / "Covid19Casos.zip", cases)
        assert run_graph(database_url, tmp_path, cases=registry, selection=AssetSelection.all()).success
        page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
        return " ".join(" ".join(page.text).split())

    extract = report_for("2020-11-15", "extract")  # 8 days before the publication
    assert (
        "This file holds part of the registry. Its last notification is on 15 Nov 2020, 8 days before its "
        "publication on 23 Nov 2020" in extract
    )
    assert "2 deaths dated after 15 Nov 2020 (of cases notified earlier) are counted" in extract
    whole = report_for("2020-11-16", "whole")  # 7 days before
    assert "Cases notified from 10 Nov 2020 to 16 Nov 2020" in whole
    assert "This file holds part of the registry" not in whole and "deaths dated after" not in whole
