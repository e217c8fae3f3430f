"""report: the analyses of the reporting marts as one self-contained HTML page, published to the reports store.

Charts are PNGs embedded as base64, so the page opens anywhere (a browser, an S3 link, an e-mail attachment)
without a server. Each run writes `report-<ultima_actualizacion>.html` and overwrites `latest.html`.
"""

from datetime import UTC, datetime
from itertools import groupby

import jinja2
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg.rows import dict_row

from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.reporting import MARTS, key_of
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource

TOP_PROVINCES = 6  # provinces with their own epidemic curve, by confirmed cases
TOP_DEPARTMENTS = 10  # departments listed beside the map
MIN_CASES_FOR_RATE = 50  # fewer cases make a case fatality rate noise: such provinces are in the table only

QUERIES = {
    "latest": "SELECT * FROM reporting.latest_update",
    "per_year": "SELECT * FROM reporting.confirmed_per_year ORDER BY year",
    "per_month": "SELECT * FROM reporting.confirmed_per_month ORDER BY month",
    "per_week": "SELECT * FROM reporting.confirmed_per_week ORDER BY week_start",
    "by_sex": "SELECT * FROM reporting.last_month_by_sex ORDER BY sort_order",
    "by_age": "SELECT * FROM reporting.last_month_by_age_band ORDER BY sort_order",
    "by_province": "SELECT * FROM reporting.last_month_by_province ORDER BY confirmed DESC, province",
    "curve": "SELECT * FROM reporting.epidemic_curve ORDER BY date",
    "fatality": "SELECT * FROM reporting.case_fatality_by_province ORDER BY confirmed DESC, province",
    "province_curves": f"""
        SELECT curve.*
          FROM reporting.epidemic_curve_by_province AS curve
          JOIN (SELECT province_id, row_number() OVER (ORDER BY confirmed DESC, province) AS rank
                  FROM reporting.case_fatality_by_province
                 ORDER BY rank LIMIT {TOP_PROVINCES}) AS top USING (province_id)
         ORDER BY top.rank, curve.date""",
    "map_provinces": "SELECT * FROM reporting.map_by_province ORDER BY confirmed DESC, province",
    "map_departments": "SELECT * FROM reporting.map_by_department ORDER BY confirmed DESC, department",
    # georef's departments, every one: their centroids draw the country's outline on the map
    "outline": "SELECT centroid_lat, centroid_lon FROM covid.departments WHERE centroid_lat IS NOT NULL",
}

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("covid_pipeline.assets", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_templates.filters["day"] = lambda d: "–" if d is None else f"{d:%d %b %Y}"
_templates.filters["thousands"] = lambda n: f"{n:,}"
_templates.filters["signed"] = lambda n: "" if n is None else f"{n:+,}"
_templates.filters["pct"] = lambda n, sign=False: "" if n is None else f"{n:+.1f}%" if sign else f"{n:.1f}%"


def load_analyses(conn) -> dict[str, list[dict]]:
    """Every analysis, read from one snapshot: a load committing meanwhile cannot mix two registries."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    cursor = conn.cursor(row_factory=dict_row)
    return {name: cursor.execute(query).fetchall() for name, query in QUERIES.items()}


def _charts():
    """The chart module, imported by the report step alone: matplotlib is a quarter of the definitions'
    import time, which every process that loads them (CLI, webserver, daemon, run worker) would pay."""
    from covid_pipeline.assets import charts

    return charts


def _confirmed_by(label: str):
    """Draws confirmed cases per category, the category's name taken from column `label`."""
    return lambda rows: _charts().horizontal_bars(
        [r[label] for r in rows], [r["confirmed"] for r in rows], "confirmed cases"
    )


def build_charts(data: dict[str, list[dict]]) -> dict[str, str | None]:
    """Base64 PNGs by name; None where there is nothing to draw."""
    charts = _charts()

    def when(rows, draw):
        return draw(rows) if rows and any(r.get("confirmed") for r in rows) else None

    provinces = {name: list(rows) for name, rows in groupby(data["province_curves"], lambda r: r["province"])}
    return {
        "curve": when(data["curve"], charts.epidemic_curve),
        "per_month": when(data["per_month"], charts.monthly_bars),
        "per_week": when(data["per_week"], charts.weekly_bars),
        "by_sex": when(data["by_sex"], _confirmed_by("sex")),
        "by_age": when(data["by_age"], _confirmed_by("age_band")),
        "by_province": when(data["by_province"], _confirmed_by("province")),
        "province_curves": charts.province_curves(provinces) if provinces else None,
        "map": charts.bubble_map(
            data["map_departments"],
            data["map_provinces"],
            [(r["centroid_lat"], r["centroid_lon"]) for r in data["outline"]],
            data["latest"][0]["last_updated"],
        )
        if data["map_provinces"]
        else None,
        "fatality": when(
            sorted(
                (r for r in data["fatality"] if r["confirmed"] >= MIN_CASES_FOR_RATE),
                key=lambda r: r["case_fatality_rate_pct"],
                reverse=True,
            ),
            lambda rows: charts.horizontal_bars(
                [r["province"] for r in rows],
                [float(r["case_fatality_rate_pct"]) for r in rows],
                "case fatality rate (%)",
                "{:.1f}%",
            ),
        ),
    }


def render_report(data: dict[str, list[dict]], images: dict[str, str | None], generated_at: datetime) -> str:
    confirmed = sum(r["confirmed"] for r in data["fatality"])
    deaths = sum(r["deaths"] for r in data["fatality"])
    summary = {
        "confirmed": confirmed,
        "deaths": deaths,
        "fatality_pct": 100.0 * deaths / confirmed if confirmed else None,
        "provinces": sum(1 for r in data["fatality"] if r["province"] != "Unknown"),
    }
    placement = {
        "confirmed": sum(r["confirmed"] for r in data["map_provinces"]),
        "confirmed_placed": sum(r["confirmed_placed"] or 0 for r in data["map_provinces"]),
        "unlocated": confirmed - sum(r["confirmed"] for r in data["map_provinces"]),
    }
    return _templates.get_template("report.html").render(
        placement=placement,
        latest=data["latest"][0],
        data=data,
        summary=summary,
        charts=images,
        top_provinces=TOP_PROVINCES,
        top_departments=TOP_DEPARTMENTS,
        min_cases_for_rate=MIN_CASES_FOR_RATE,
        generated_at=generated_at,
    )


@asset(
    deps=[key_of(name) for name in MARTS],
    group_name="reporting",
    kinds={"html"},
    description="The analyses as a self-contained HTML report in the reports store (`report-<date>.html`, `latest.html`).",
)
def report(
    context: AssetExecutionContext, warehouse: WarehouseResource, reports_store: StoreResource
) -> MaterializeResult:
    with failures_for_people("The published report was left as it was."), warehouse.connect() as conn:
        data = load_analyses(conn)
    images = build_charts(data)
    html = render_report(data, images, datetime.now(UTC)).encode("utf-8")
    latest = data["latest"][0]
    store = reports_store.store()
    dated_key = f"report-{latest['last_updated'] or latest['reference_date'] or 'undated'}.html"
    uri = store.put_bytes(html, dated_key, "text/html; charset=utf-8")
    latest_uri = store.put_bytes(html, "latest.html", "text/html; charset=utf-8")
    context.log.info(f"report written to {uri} ({len(html):,} bytes)")
    curve = images["curve"]
    link = MetadataValue.url if store.is_s3 else MetadataValue.path
    return MaterializeResult(
        metadata={
            "report_uri": link(uri),
            "latest_uri": link(latest_uri),
            "bytes": MetadataValue.int(len(html)),
            "last_updated": MetadataValue.text(str(latest["last_updated"])),
            "epidemic_curve": MetadataValue.md(
                f"![epidemic curve](data:image/png;base64,{curve})" if curve else "No cases to plot."
            ),
        }
    )
