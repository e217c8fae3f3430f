"""The report asset: a self-contained HTML page with its charts embedded, written to a folder or to S3."""

import base64
import io
from html.parser import HTMLParser

import boto3
from dagster import DagsterInstance, materialize
from PIL import Image

from covid_pipeline.assets.report import report
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource
from covid_pipeline_tests.helpers.registry import row, write_registry
from covid_pipeline_tests.helpers.warehouse import run_all_assets

PNG_PREFIX = "data:image/png;base64,"


class Page(HTMLParser):
    """The parts of the page a reader relies on: images, headings, text."""

    def __init__(self, html: str):
        super().__init__()
        self.images: list[dict] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self._heading = False
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs))
        self._heading = tag in ("h1", "h2", "h3")

    def handle_endtag(self, tag):
        self._heading = False

    def handle_data(self, data):
        self.text.append(data)
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
    assert "The last month: 04 May – 03 Jun 2020" in page.headings
    # nine charts, each a real PNG of a readable size, each described for screen readers
    assert len(page.images) == 9
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
    assert "2,250" in text and "23 Nov 2020" in text  # confirmed cases, date of the registry
    # the epidemic curve is in the asset's metadata as an image the Dagster UI renders
    markdown = metadata["epidemic_curve"]
    assert markdown.startswith("![epidemic curve](" + PNG_PREFIX) and markdown.endswith(")")
    decoded_png(markdown[len("![epidemic curve](") : -1])


def test_the_report_is_published_to_s3(sample_warehouse, s3_bucket):
    metadata = run_report(sample_warehouse, f"s3://{s3_bucket}/reports")
    assert metadata["report_uri"] == f"s3://{s3_bucket}/reports/report-2020-11-23.html"
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["reports/latest.html", "reports/report-2020-11-23.html"]
    published = s3.get_object(Bucket=s3_bucket, Key="reports/latest.html")
    assert published["ContentType"].startswith("text/html")
    assert len(Page(published["Body"].read().decode("utf-8")).images) == 9


def test_a_registry_without_confirmed_cases_gives_a_report_that_says_so(database_url, tmp_path):
    registry = write_registry(
        tmp_path / "Covid19Casos.zip",
        [row(id_evento_caso=str(i), clasificacion_resumen="Descartado", fallecido="NO") for i in (1, 2)],
    )
    run_all_assets(database_url, tmp_path, cases_url=str(registry))
    page = Page((tmp_path / "reports" / "latest.html").read_text(encoding="utf-8"))
    assert page.images == []
    assert "No confirmed cases in the data." in " ".join(page.text)
