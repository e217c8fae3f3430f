"""The report asset: a self-contained HTML page with its charts embedded, written to a folder or to S3."""

import base64
import calendar
import io
from collections import Counter
from datetime import date, timedelta
from html.parser import HTMLParser
from pathlib import Path

import boto3
from dagster import AssetSelection, DagsterInstance, materialize
from PIL import Image

from covid_pipeline.assets.report import report
from covid_pipeline.cli import sample_sources
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource
from covid_pipeline_tests.helpers.registry import read_records, row, write_registry
from covid_pipeline_tests.helpers.warehouse import run_all_assets

PNG_PREFIX = "data:image/png;base64,"


class Page(HTMLParser):
    """The parts of the page a reader relies on: images, headings, text, and each table (its rows of cell texts)
    under the heading it follows."""

    def __init__(self, html: str):
        super().__init__()
        self.images: list[dict] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._heading = False
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
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


def run_report(database_url: str, reports_location: str):
    resources = {
        "warehouse": WarehouseResource(database_url=database_url),
        "reports_store": StoreResource(location=reports_location),
    }
    result = materialize([report], resources=resources, instance=DagsterInstance.ephemeral())
    assert result.success
    [event] = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_the_report_shows_every_analysis_with_its_charts(sample_warehouse, tmp_path):
    metadata = run_report(sample_warehouse, str(tmp_path / "reports"))
    dated = tmp_path / "reports" / "report-2020-11-23.html"
    assert metadata["report_uri"] == str(dated)
    html = dated.read_text(encoding="utf-8")
    assert (tmp_path / "reports" / "latest.html").read_text(encoding="utf-8") == html
    page = Page(html)
    assert page.headings[:2] == ["COVID-19 in Argentina: confirmed cases and deaths", "Epidemic curve"]
    for heading in (
        "Confirmed cases per year",
        "Confirmed cases per month",
        "The last two months, week by week",
        "By sex",
        "By age",
        "By province of residence",
        "Case fatality rate per province",
    ):
        assert heading in page.headings
    # the figures, against a recount of the registry and georef files with the csv module
    recount = Recount(sample_sources())
    start, end = recount.last_month
    assert f"The last month: {start:%d %b} – {end:%d %b %Y}" in page.headings
    # a chart per analysis with cases (the sample's cases were notified in June, its last month is empty), each a
    # real PNG of a readable size, each described for screen readers
    assert len(page.images) == 5
    for image in page.images:
        width, height = decoded_png(image["src"]).size
        assert width > 300 and height > 100 and image["alt"]
    # the map comes right after the epidemic curve, dated with the registry's publication
    curve, map_ = page.images[:2]
    assert curve["alt"].startswith("Confirmed cases and deaths per day")
    assert map_["alt"] == (
        "Map of Argentina: confirmed cases and deaths per department of residence, registry of 23 Nov 2020"
    )
    assert "The 10 departments with most confirmed cases" in page.headings
    text = " ".join(page.text)
    assert f"{len(recount.confirmed):,} confirmed cases" in " ".join(text.split())
    assert f"{recount.last_updated:%d %b %Y}" in text
    assert page.tables["Confirmed cases per year"][1:] == [
        [year, f"{n:,}"]
        for year, n in sorted(Counter(r["fecha_apertura"][:4] for r in recount.confirmed).items())
    ]
    by_sex = Counter(r["sexo"] for r in recount.confirmed if start <= recount.opened(r) <= end)
    assert [row[:2] for row in page.tables["By sex"][1:]] == [
        [label, f"{by_sex[code]:,}"] for code, label in SEXES
    ]
    fatality = {row[0]: (row[1], row[2]) for row in page.tables["Case fatality rate per province"][1:]}
    assert fatality == recount.fatality_by_province()
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

    def fatality_by_province(self) -> dict[str, tuple[str, str]]:
        confirmed, deaths = Counter(), Counter()
        for r in self.confirmed:
            name = self.provinces.get(int(r["residencia_provincia_id"]), "Unknown")
            confirmed[name] += 1
            deaths[name] += r["fallecido"] == "SI"
        return {name: (f"{n:,}", f"{deaths[name]:,}") for name, n in confirmed.items()}


def test_the_report_is_published_to_s3(sample_warehouse, s3_bucket):
    metadata = run_report(sample_warehouse, f"s3://{s3_bucket}/reports")
    assert metadata["report_uri"] == f"s3://{s3_bucket}/reports/report-2020-11-23.html"
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["reports/latest.html", "reports/report-2020-11-23.html"]
    published = s3.get_object(Bucket=s3_bucket, Key="reports/latest.html")
    assert published["ContentType"].startswith("text/html")
    assert len(Page(published["Body"].read().decode("utf-8")).images) == 5


def test_a_registry_without_confirmed_cases_gives_a_report_that_says_so(database_url, tmp_path):
    registry = write_registry(
        tmp_path / "Covid19Casos.zip",
        [row(id_evento_caso=str(i), clasificacion_resumen="Descartado", fallecido="NO") for i in (1, 2)],
    )
    run_all_assets(database_url, tmp_path, cases_url=str(registry), selection=AssetSelection.all())
    page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
    assert page.images == []
    assert "No confirmed cases in the data." in " ".join(page.text)
