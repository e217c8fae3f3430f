"""report: the analyses of the reporting marts as one self-contained HTML page, published to the reports store.

Charts are PNGs embedded as base64, so the page opens anywhere (a browser, an S3 link, an e-mail attachment)
without a server. Each run writes `report-<ultima_actualizacion>.html` and overwrites `latest.html`, beside the
data dictionary (`codebook.md`) the page links to.

What the page says about time comes from reporting.latest_update: every window ends on the publication date, and
every curve on the data's last notification date (see docs/reporting.md).
"""

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from itertools import groupby

import jinja2
from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg.rows import dict_row

from covid_pipeline.assets.codebook import CODEBOOK_KEY, codebook
from covid_pipeline.assets.failures import failures_for_people
from covid_pipeline.assets.reporting import MARTS, key_of
from covid_pipeline.resources.stores import StoreResource
from covid_pipeline.resources.warehouse import WarehouseResource

TOP_PROVINCES = 6  # provinces with their own epidemic curve, by confirmed cases
TOP_DEPARTMENTS = 10  # departments listed beside the map
MIN_CASES_FOR_RATE = 50  # fewer cases make a case fatality rate noise: such provinces are in the table only
# A whole registry is notified up to its publication (the last day or two may be empty): a week without any
# notification before the publication says the file holds only part of the registry.
PARTIAL_AFTER_DAYS = 7

# Curves stop where the data's notifications stop (latest_update.last_notification_date): after it, the file has
# no case, and a curve of zeros there would read as the end of the epidemic.
UNTIL_LAST_NOTIFICATION = "date <= (SELECT last_notification_date FROM reporting.latest_update)"
QUERIES = {
    "latest": "SELECT * FROM reporting.latest_update",
    "per_year": "SELECT * FROM reporting.confirmed_per_year WHERE year <= "
    "(SELECT extract(year FROM last_notification_date) FROM reporting.latest_update) ORDER BY year",
    "per_month": "SELECT * FROM reporting.confirmed_per_month WHERE month <= "
    "(SELECT last_notification_date FROM reporting.latest_update) ORDER BY month",
    "per_week": "SELECT * FROM reporting.confirmed_per_week ORDER BY week_start",
    "by_sex": "SELECT * FROM reporting.last_month_by_sex ORDER BY sort_order",
    "by_age": "SELECT * FROM reporting.last_month_by_age_band ORDER BY sort_order",
    "by_province": "SELECT * FROM reporting.last_month_by_province WHERE confirmed > 0 ORDER BY confirmed DESC, province",
    "curve": f"SELECT * FROM reporting.epidemic_curve WHERE {UNTIL_LAST_NOTIFICATION} ORDER BY date",
    "deaths_after_curve": "SELECT coalesce(sum(deaths), 0) AS deaths FROM reporting.epidemic_curve "
    f"WHERE NOT ({UNTIL_LAST_NOTIFICATION})",
    "onset": f"SELECT * FROM reporting.epidemic_curve_onset WHERE {UNTIL_LAST_NOTIFICATION} ORDER BY date",
    "delays": "SELECT delay_days, sum(cases)::bigint AS cases FROM reporting.notification_delay GROUP BY 1 ORDER BY 1",
    "delay_months": "SELECT * FROM reporting.notification_delay_summary WHERE province_id IS NULL ORDER BY month",
    "positivity": "SELECT * FROM reporting.positivity_by_week WHERE week_start <= "
    "(SELECT last_notification_date FROM reporting.latest_update) ORDER BY week_start",
    "positivity_provinces": """
        SELECT province, sum(confirmed)::bigint AS confirmed, sum(discarded)::bigint AS discarded
          FROM reporting.positivity_by_province_week
         GROUP BY province_id, province
        HAVING sum(confirmed + discarded) > 0
         ORDER BY sum(confirmed + discarded) DESC, province""",
    "incidence": """
        SELECT incidence.*, provinces.centroid_lat AS latitude, provinces.centroid_lon AS longitude
          FROM reporting.incidence_by_province AS incidence
          LEFT JOIN covid.provinces USING (province_id)
         ORDER BY incidence.confirmed_per_100k DESC NULLS LAST, incidence.province""",
    "fatality": "SELECT * FROM reporting.case_fatality_by_province ORDER BY confirmed DESC, province",
    "fatality_by_age": "SELECT * FROM reporting.case_fatality_by_age_band ORDER BY sort_order",
    "province_curves": f"""
        SELECT curve.*
          FROM reporting.epidemic_curve_by_province AS curve
          JOIN (SELECT province_id, row_number() OVER (ORDER BY confirmed DESC, province) AS rank
                  FROM reporting.case_fatality_by_province
                 ORDER BY rank LIMIT {TOP_PROVINCES}) AS top USING (province_id)
         WHERE curve.{UNTIL_LAST_NOTIFICATION}
         ORDER BY top.rank, curve.date""",
    "map_provinces": "SELECT * FROM reporting.map_by_province ORDER BY confirmed DESC, province",
    "map_departments": "SELECT * FROM reporting.map_by_department ORDER BY confirmed DESC, department",
    # georef's departments, every one: their centroids draw the country's outline on the map
    "outline": "SELECT centroid_lat, centroid_lon FROM covid.departments WHERE centroid_lat IS NOT NULL",
}


def percent(part, whole) -> Decimal | None:
    """100 * part / whole to one decimal, rounded once (half up): the table and the chart show the same figure."""
    if not whole:
        return None
    return (Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _pct(value, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f}%" if sign else f"{value:.1f}%"


_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("covid_pipeline.assets", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_templates.filters["day"] = lambda d: "–" if d is None else f"{d:%d %b %Y}"
_templates.filters["thousands"] = lambda n: "–" if n is None else f"{n:,}"
_templates.filters["decimal"] = lambda n: "–" if n is None else f"{n:,.1f}"
_templates.filters["signed"] = lambda n: "–" if n is None else f"{n:+,}"
_templates.filters["pct"] = _pct
_templates.filters["percent_of"] = lambda part, whole: _pct(percent(part, whole))


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


def fatality_rows(data: dict[str, list[dict]]) -> list[dict]:
    """The provinces' case fatality rates as the page shows them, in the table and in the chart alike."""
    return [r | {"rate": percent(r["deaths"], r["confirmed"])} for r in data["fatality"]]


def fatality_chart(data: dict[str, list[dict]]) -> tuple[list, list, str, list] | None:
    """What the fatality chart draws (provinces, rates, axis label, the rates as written on the bars): the
    provinces with enough cases, highest rate first, each rate written as the table writes it."""
    shown = sorted(
        (r for r in fatality_rows(data) if r["confirmed"] >= MIN_CASES_FOR_RATE),
        key=lambda r: r["rate"],
        reverse=True,
    )
    if not shown:
        return None
    return (
        [r["province"] for r in shown],
        [float(r["rate"]) for r in shown],
        "case fatality rate (%)",
        [_pct(r["rate"]) for r in shown],
    )


def age_band_rows(data: dict[str, list[dict]]) -> list[dict]:
    return [
        r
        | {
            "rate": percent(r["deaths"], r["confirmed"]),
            "rate_with_suspected": percent(r["deaths"], r["confirmed"] + r["suspected"]),
        }
        for r in data["fatality_by_age"]
    ]


def delay_percentiles(histogram: list[dict]) -> dict[str, int | None]:
    """Median and 90th percentile of the delays (as percentile_disc: the smallest delay with that share at or
    below it), and the cases they are taken from."""
    total = sum(r["cases"] for r in histogram)
    found, running = {"cases": total, "median": None, "p90": None}, 0
    for row in histogram:
        running += row["cases"]
        for name, fraction in (("median", 0.5), ("p90", 0.9)):
            if found[name] is None and total and running >= fraction * total:
                found[name] = row["delay_days"]
    return found


def build_charts(data: dict[str, list[dict]]) -> dict[str, str | None]:
    """Base64 PNGs by name; None where there is nothing to draw."""
    charts = _charts()

    def when(rows, draw, column="confirmed"):
        return draw(rows) if rows and any(r.get(column) for r in rows) else None

    provinces = {name: list(rows) for name, rows in groupby(data["province_curves"], lambda r: r["province"])}
    registry_date = data["latest"][0]["last_updated"]
    fatality = fatality_chart(data)
    located = [r for r in data["incidence"] if r["population"] and r["latitude"] is not None]
    return {
        "curve": when(data["curve"], charts.epidemic_curve),
        "onset": when(data["onset"], lambda rows: charts.onset_curve(rows, data["latest"][0]["first_date"])),
        "delays": when(
            data["delays"], lambda rows: charts.delay_histogram(rows, delay_percentiles(rows)), "cases"
        ),
        "positivity": charts.positivity(data["positivity"])
        if any(r["confirmed"] + r["discarded"] for r in data["positivity"])
        else None,
        "per_month": when(data["per_month"], charts.monthly_bars),
        "per_week": when(data["per_week"], charts.weekly_bars),
        "by_sex": when(data["by_sex"], _confirmed_by("sex")),
        "by_age": when(data["by_age"], _confirmed_by("age_band")),
        "by_province": when(data["by_province"], _confirmed_by("province")),
        "province_curves": charts.province_curves(provinces) if any(provinces.values()) else None,
        "map": charts.bubble_map(
            data["map_departments"],
            data["map_provinces"],
            [(r["centroid_lat"], r["centroid_lon"]) for r in data["outline"]],
            registry_date,
        )
        if data["map_provinces"]
        else None,
        "rate_map": charts.rate_map(
            located, [(r["centroid_lat"], r["centroid_lon"]) for r in data["outline"]], registry_date
        )
        if any(r["confirmed"] for r in located)
        else None,
        "fatality": charts.horizontal_bars(*fatality) if fatality else None,
        "fatality_by_age": when(age_band_rows(data), charts.fatality_range),
    }


def describe_span(latest: dict, deaths_after_curve: int) -> dict:
    """What the page says about the data's dates: its span, and whether the file stops well before its
    publication (an extract of the registry, such as the bundled sample)."""
    published, last = latest["reference_date"], latest["last_notification_date"]
    gap = (published - last).days if published and last else None
    return {
        "gap_days": gap,
        "partial": gap is not None and gap > PARTIAL_AFTER_DAYS,
        "deaths_after_curve": deaths_after_curve,
    }


def render_report(data: dict[str, list[dict]], images: dict[str, str | None], generated_at: datetime) -> str:
    confirmed = sum(r["confirmed"] for r in data["fatality"])
    deaths = sum(r["deaths"] for r in data["fatality"])
    population = sum(r["population"] or 0 for r in data["incidence"])
    summary = {
        "confirmed": confirmed,
        "deaths": deaths,
        "fatality_pct": percent(deaths, confirmed),
        "per_100k": round(100_000 * confirmed / population, 1) if population else None,
        "provinces": sum(1 for r in data["fatality"] if r["province"] != "Unknown"),
    }
    placement = {
        "confirmed": sum(r["confirmed"] for r in data["map_provinces"]),
        "confirmed_placed": sum(r["confirmed_placed"] or 0 for r in data["map_provinces"]),
        "unlocated": confirmed - sum(r["confirmed"] for r in data["map_provinces"]),
    }
    latest = data["latest"][0]
    return _templates.get_template("report.html").render(
        placement=placement,
        latest=latest,
        span=describe_span(latest, data["deaths_after_curve"][0]["deaths"]),
        data=data,
        fatality=fatality_rows(data),
        fatality_by_age=age_band_rows(data),
        delays=delay_percentiles(data["delays"]),
        summary=summary,
        charts=images,
        top_provinces=TOP_PROVINCES,
        top_departments=TOP_DEPARTMENTS,
        min_cases_for_rate=MIN_CASES_FOR_RATE,
        codebook=CODEBOOK_KEY,
        generated_at=generated_at,
    )


@asset(
    deps=[key_of(name) for name in MARTS] + [codebook],
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
    dated_key = f"report-{latest['last_updated'] or 'undated'}.html"
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
