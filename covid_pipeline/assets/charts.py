"""The report's charts: matplotlib figures rendered to PNG, ready to embed as base64 (no files, no server)."""

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: assets run in workers and containers

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

CONFIRMED, DEATHS, MUTED, NOWCAST, DISCARDED = "#1f77b4", "#c0392b", "#9fb8d0", "#e67e22", "#bdbdbd"
SHORT_SPAN_DAYS = (
    60  # up to this many days, one bar per day; beyond, a stepped area (one artist, same picture)
)
# Whole numbers with separators; small fractional ticks (a 7-day average of 1.5) keep their decimals.
COUNTS = FuncFormatter(
    lambda value, _: f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:g}"
)


def text(value: str) -> str:
    """A label from the data, drawn as written: matplotlib reads text between two $ as TeX (and raises on
    invalid TeX), so every $ is escaped."""
    return str(value).replace("$", r"\$")


def _values(rows: list[dict], column: str) -> list[float]:
    """A column as floats for plotting; NULL (e.g. a 7-day average without seven days) as a gap."""
    return [float("nan") if r[column] is None else float(r[column]) for r in rows]


def png_base64(fig) -> str:
    """The figure as a base64 PNG (and closed: pyplot keeps every open figure alive)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _axes(width=9.0, height=3.4, rows=1, **kwargs):
    fig, axes = plt.subplots(rows, 1, figsize=(width, height * rows), **kwargs)
    for ax in axes if rows > 1 else [axes]:
        ax.spines[["top", "right"]].set_visible(False)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    return fig, axes


def _date_axis(ax, max_ticks: int = 10) -> None:
    """Dates that stay legible on any span: a few ticks, the year written once where it changes."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=max_ticks)
    ax.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator, show_offset=False)
    # ticks on months name the year every time; ticks on days name it on the first of a month
    formatter.formats[1] = formatter.zero_formats[1] = "%b\n%Y"
    formatter.formats[2], formatter.zero_formats[2] = "%d %b", "%d %b\n%Y"
    ax.xaxis.set_major_formatter(formatter)


def _bar_width(count: int) -> float:
    """Figure width for `count` bars: a lone bar should not fill the page."""
    return min(9.0, 2.5 + 0.55 * count)


def monthly_bars(rows: list[dict]) -> str:
    fig, ax = _axes(width=_bar_width(len(rows)))
    labels = [r["month"].strftime("%b\n%Y") for r in rows]
    ax.bar(range(len(rows)), [r["confirmed"] for r in rows], color=CONFIRMED, width=0.7)
    step = max(1, len(rows) // 12)  # at most about twelve labels
    ax.set_xticks(range(0, len(rows), step), labels[::step])
    ax.set_ylabel("confirmed cases")
    ax.yaxis.set_major_formatter(COUNTS)
    return png_base64(fig)


def weekly_bars(rows: list[dict]) -> str:
    fig, ax = _axes(width=_bar_width(len(rows)))
    labels = [f"{r['week_start']:%d %b}" for r in rows]
    colors = [CONFIRMED if r["complete_week"] else MUTED for r in rows]
    bars = ax.bar(labels, [r["confirmed"] for r in rows], color=colors, width=0.7)
    ax.bar_label(bars, labels=[f"{r['confirmed']:,}" for r in rows], fontsize=8, padding=2)
    ax.set_ylabel("confirmed cases")
    ax.set_xlabel("week starting on Monday (pale: week not complete in the data)")
    ax.yaxis.set_major_formatter(COUNTS)
    return png_base64(fig)


def horizontal_bars(
    labels: list[str], values: list[float], value_label: str, value_texts: list[str] | None = None
) -> str:
    """A bar per category, largest on top (the order given is kept top to bottom), each with its value written
    as `value_texts` says (by default the value with thousands separators)."""
    return png_base64(horizontal_bars_figure(labels, values, value_label, value_texts))


def horizontal_bars_figure(labels, values, value_label, value_texts=None):
    texts = value_texts or [f"{v:,.0f}" for v in values]
    fig, ax = _axes(height=max(1.6, 0.32 * len(labels) + 0.8))
    bars = ax.barh([text(label) for label in labels[::-1]], values[::-1], color=CONFIRMED)
    ax.bar_label(bars, labels=texts[::-1], fontsize=8, padding=3)
    ax.set_xlabel(value_label)
    ax.xaxis.set_major_formatter(COUNTS if "%" not in value_label else FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)
    return fig


def _daily(ax, days, values, color, label, **style) -> None:
    """Daily counts: a bar per day on a short span, a stepped area on a long one."""
    if len(days) <= SHORT_SPAN_DAYS:
        ax.bar(days, values, width=0.8, color=color, lw=0, label=label, **style)
    else:
        ax.fill_between(days, values, step="mid", color=color, lw=0, label=label, **style)


def _average(ax, days, averages: list[float], color, **style) -> None:
    """The 7-day average as a line, when the span has one (it needs seven days)."""
    if any(v == v for v in averages):  # NaN != NaN
        ax.plot(days, averages, color=color, lw=2, label="7-day average", **style)


def epidemic_curve(rows: list[dict], title: str = "") -> str:
    """Daily counts as pale bars, the 7-day average as a line: confirmed on top, deaths below."""
    days = [r["date"] for r in rows]
    fig, (top, bottom) = _axes(height=2.8, rows=2, sharex=True)
    for ax, column, color, label in (
        (top, "confirmed", CONFIRMED, "confirmed cases per day (by notification date)"),
        (bottom, "deaths", DEATHS, "deaths per day (by date of death)"),
    ):
        _daily(ax, days, [r[column] for r in rows], color, "daily", alpha=0.25)
        ax.plot(days, _values(rows, f"{column}_7day_avg"), color=color, lw=2, label="7-day average")
        ax.set_title(label, loc="left", fontsize=10)
        ax.yaxis.set_major_formatter(COUNTS)
        ax.legend(loc="best", frameon=False, fontsize=8)
    _date_axis(bottom)
    if title:
        fig.suptitle(title, x=0.02, ha="left", fontsize=12, fontweight="bold")
    return png_base64(fig)


def province_curves(series: dict[str, list[dict]]) -> str:
    """Small multiples: confirmed cases per day of each province (pale) and their 7-day average, each on its own
    scale."""
    names = list(series)
    columns = 2
    rows = (len(names) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(9, 2.1 * rows), sharex=True, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        points = series[name]
        days = [p["date"] for p in points]
        _daily(ax, days, [p["confirmed"] for p in points], CONFIRMED, "daily", alpha=0.25)
        _average(ax, days, _values(points, "confirmed_7day_avg"), CONFIRMED)
        ax.set_title(text(name), loc="left", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
        ax.yaxis.set_major_formatter(COUNTS)
        ax.grid(axis="y", alpha=0.3)
        _date_axis(ax, max_ticks=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.supylabel("confirmed per day (line: 7-day average)", fontsize=9)
    fig.tight_layout()
    return png_base64(fig)


# Mainland Argentina and Tierra del Fuego: the Antarctic and South Atlantic departments would shrink the rest.
MAP_LON, MAP_LAT = (-74.0, -53.0), (-55.5, -21.3)
# Greater Buenos Aires: a third of the cases on a speck of the map, shown enlarged in an inset.
AMBA_LON, AMBA_LAT = (-59.1, -57.9), (-35.05, -34.25)


def _on_map(lat, lon) -> bool:
    return (
        lat is not None
        and lon is not None
        and MAP_LAT[0] <= lat <= MAP_LAT[1]
        and MAP_LON[0] <= lon <= MAP_LON[1]
    )


def _bubbles(ax, outline, placed, unplaced, column: str, color: str, scale: float) -> None:
    """Grey dots for every department, a filled bubble per department, a dashed ring per province's remainder."""
    ax.scatter([lon for _, lon in outline], [lat for lat, _ in outline], s=3, color="#cfcfcf", lw=0)
    ax.scatter(
        [d["longitude"] for d in placed],
        [d["latitude"] for d in placed],
        s=[max(4.0, d[column] * scale) for d in placed],
        color=color,
        alpha=0.45,
        edgecolors="white",
        linewidths=0.4,
    )
    ax.scatter(
        [p["longitude"] for p, _ in unplaced],
        [p["latitude"] for p, _ in unplaced],
        s=[max(4.0, n * scale) for _, n in unplaced],
        facecolors="none",
        edgecolors=color,
        linewidths=1.0,
        linestyle="--",
    )


def bubble_map(
    departments: list[dict], provinces: list[dict], outline: list[tuple[float, float]], registry_date
) -> str:
    """Confirmed cases and deaths where people live: a bubble per georef department (area ~ count) at its
    centroid, and a dashed ring at each province's centroid for its cases whose department is not recorded.

    `outline` (every georef department's centroid) draws the country as grey dots: georef has no polygons here.
    """
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 6.6))
    for ax, column, color, title in (
        (axes[0], "confirmed", CONFIRMED, "confirmed cases"),
        (axes[1], "deaths", DEATHS, "deaths of confirmed cases"),
    ):
        placed = [d for d in departments if d[column] and _on_map(d["latitude"], d["longitude"])]
        unplaced = [
            (p, p[column] - (p[f"{column}_placed"] or 0))
            for p in provinces
            if _on_map(p["latitude"], p["longitude"]) and p[column] - (p[f"{column}_placed"] or 0) > 0
        ]
        largest = max([d[column] for d in placed] + [n for _, n in unplaced] + [1])
        scale = 500.0 / largest  # the largest bubble: about 500 points², on either panel
        _bubbles(ax, outline, placed, unplaced, column, color, scale)
        total = sum(p[column] for p in provinces)
        ax.set_title(f"{title}: {total:,}", loc="left", fontsize=10)
        ax.set(xlim=MAP_LON, ylim=MAP_LAT, aspect=1 / 0.8)  # a degree of longitude is ~0.8 of one of latitude
        ax.set_axis_off()
        inset = ax.inset_axes([0.52, 0.0, 0.48, 0.34])  # over the Atlantic, beside Patagonia
        _bubbles(inset, outline, placed, unplaced, column, color, scale)
        inset.set(xlim=AMBA_LON, ylim=AMBA_LAT, aspect=1 / 0.82, xticks=[], yticks=[])
        inset.set_title("Greater Buenos Aires", fontsize=8, pad=2)
        for spine in inset.spines.values():
            spine.set_color("#999999")
        ax.indicate_inset_zoom(inset, edgecolor="#999999", alpha=0.8)
        for size in _legend_sizes(largest):
            ax.scatter([], [], s=size * scale, color=color, alpha=0.45, label=f"{size:,}")
        ax.scatter(
            [],
            [],
            s=40,
            facecolors="none",
            edgecolors=color,
            linestyle="--",
            label="department\nnot recorded",
        )
        ax.legend(loc="lower left", frameon=False, fontsize=8, labelspacing=1.3, borderpad=0.1)
    fig.suptitle(
        f"Where the cases live (registry of {registry_date:%d %b %Y})"
        if registry_date
        else "Where the cases live",
        x=0.02,
        ha="left",
        fontsize=11,
        fontweight="bold",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))  # room for the title
    return png_base64(fig)


def _legend_sizes(largest: int) -> list[int]:
    """Two round counts for the legend, the larger not above the largest bubble."""
    top = 10 ** (len(str(int(largest))) - 1)
    top = max(top * m for m in (1, 2, 5) if top * m <= largest)
    return sorted({s for s in (top, top // 10) if s >= 1}, reverse=True)


RECENT_DAYS = 42  # the zoom on the last days of a long onset curve, where the nowcast is


def onset_curve(rows: list[dict], first_notification=None) -> str:
    """Confirmed cases per day of symptom onset: complete days solid; the days still being notified pale and
    hatched (the cases notified so far), with the nowcast and its 95% interval over them. Onset days before the
    data's first notification are shaded: their cases notified before it are not in the data. A long curve gets a
    second panel on its last six weeks, where the nowcast is."""
    panels = [rows] if len(rows) <= SHORT_SPAN_DAYS else [rows, rows[-RECENT_DAYS:]]
    fig, axes = _axes(height=3.0, rows=len(panels))
    for ax, shown in zip(axes if len(panels) > 1 else [axes], panels, strict=True):
        _onset_panel(ax, shown, first_notification)
    legend = {}
    for ax in axes if len(panels) > 1 else [axes]:
        legend |= dict(zip(*reversed(ax.get_legend_handles_labels()), strict=True))
    fig.legend(
        legend.values(),
        legend.keys(),
        loc="upper left",
        ncols=2,
        frameon=False,
        fontsize=8,
        bbox_to_anchor=(0.05, 1.0),
    )
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    return png_base64(fig)


def _onset_panel(ax, rows: list[dict], first_notification) -> None:
    days = [r["date"] for r in rows]
    if first_notification and days[0] < first_notification:
        ax.axvspan(
            mdates.date2num(days[0]) - 0.5,
            mdates.date2num(first_notification) - 0.5,
            color="#eeeeee",
            lw=0,
            label=f"before the first notification ({first_notification:%d %b %Y}): counted in part",
        )
    _daily(
        ax,
        days,
        [r["confirmed"] if r["complete"] else 0 for r in rows],
        CONFIRMED,
        "complete days",
        alpha=0.6,
    )
    pending = [0 if r["complete"] else r["confirmed"] for r in rows]
    if any(pending):
        _daily(
            ax,
            days,
            pending,
            MUTED,
            "days still being notified: cases so far",
            hatch="////",
            edgecolor="white",
        )
    estimated = [r for r in rows if not r["complete"] and r["nowcast"] is not None]
    if estimated:
        when = [r["date"] for r in estimated]
        ax.fill_between(
            when,
            _values(estimated, "nowcast_low"),
            _values(estimated, "nowcast_high"),
            color=NOWCAST,
            alpha=0.3,
            lw=0,
            label="nowcast, 95% interval",
        )
        ax.plot(when, _values(estimated, "nowcast"), color=NOWCAST, lw=2, marker="o", ms=3, label="nowcast")
    ax.set_ylabel("confirmed per day", fontsize=9)
    ax.yaxis.set_major_formatter(COUNTS)
    _date_axis(ax)


def delay_histogram(rows: list[dict], percentiles: dict) -> str:
    """Confirmed cases per number of days from symptom onset to notification, with the median and 90th
    percentile marked."""
    fig, ax = _axes(width=7.0, height=3.0)
    ax.bar([r["delay_days"] for r in rows], [r["cases"] for r in rows], width=0.8, color=CONFIRMED)
    for name, style in (("median", "-"), ("p90", "--")):
        if percentiles[name] is not None:
            label = f"{'median' if name == 'median' else '90th percentile'}: {percentiles[name]} days"
            ax.axvline(percentiles[name], color=NOWCAST, ls=style, lw=1.5, label=label)
    ax.set_xlim(-0.8, 30.8)
    ax.set_xlabel("days from symptom onset to notification")
    ax.set_ylabel("confirmed cases")
    ax.yaxis.set_major_formatter(COUNTS)
    ax.legend(loc="upper right", frameon=False, fontsize=8)
    return png_base64(fig)


def positivity(rows: list[dict]) -> str:
    """Weekly test positivity on top (confirmed / (confirmed + discarded)), the week's classified cases below:
    a bar per week, Monday to Sunday; with a few weeks only, each week's positivity is written on it."""
    weeks = [r["week_start"] for r in rows]
    middles = [mdates.date2num(w) + 3.5 for w in weeks]
    fig, (top, bottom) = _axes(height=2.4, rows=2, sharex=True)
    share = [float("nan") if r["positivity"] is None else 100 * float(r["positivity"]) for r in rows]
    top.plot(middles, share, color=CONFIRMED, lw=2, marker="o", ms=4)
    if len(rows) <= 12:
        for x, value in zip(middles, share, strict=True):
            if value == value:
                top.annotate(
                    f"{value:.1f}%",
                    (x, value),
                    xytext=(0, 6),
                    textcoords="offset points",
                    ha="center",
                    fontsize=8,
                )
    top.set_ylim(0, max([s for s in share if s == s] + [10]) * 1.25)
    top.set_title("positivity per week (%)", loc="left", fontsize=10)
    confirmed, discarded = [r["confirmed"] for r in rows], [r["discarded"] for r in rows]
    starts = [mdates.date2num(w) for w in weeks]
    bottom.bar(starts, confirmed, width=6.6, align="edge", color=CONFIRMED, label="confirmed")
    bottom.bar(
        starts, discarded, width=6.6, align="edge", bottom=confirmed, color=DISCARDED, label="discarded"
    )
    bottom.set_title("cases classified per week of notification", loc="left", fontsize=10)
    bottom.yaxis.set_major_formatter(COUNTS)
    bottom.legend(loc="upper left", frameon=False, fontsize=8)
    bottom.set_xlim(starts[0] - 3, starts[-1] + 10)
    _date_axis(bottom)
    return png_base64(fig)


# Georef's official names of two provinces are too long to write on a map.
SHORT_NAMES = {
    "Ciudad Autónoma de Buenos Aires": "CABA",
    "Tierra del Fuego, Antártida e Islas del Atlántico Sur": "Tierra del Fuego",
}


def _rate(value: float) -> str:
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def rate_map(provinces: list[dict], outline: list[tuple[float, float]], registry_date) -> str:
    """Confirmed cases and deaths per 100,000 residents: a dot per province at georef's centroid, its colour the
    rate (the colour bar reads it); the five highest rates are written beside their province."""
    fig, axes = plt.subplots(1, 2, figsize=(6.6, 7.6))
    shown = [p for p in provinces if _on_map(p["latitude"], p["longitude"])]
    for ax, column, colours, title in (
        (axes[0], "confirmed_per_100k", "Blues", "confirmed per 100,000"),
        (axes[1], "deaths_per_100k", "Reds", "deaths per 100,000"),
    ):
        ax.scatter([lon for _, lon in outline], [lat for lat, _ in outline], s=3, color="#cfcfcf", lw=0)
        dots = ax.scatter(
            [p["longitude"] for p in shown],
            [p["latitude"] for p in shown],
            c=[float(p[column]) for p in shown],
            cmap=colours,
            vmin=0,
            s=150,
            edgecolors="#555555",
            linewidths=0.5,
        )
        for p in sorted(shown, key=lambda p: p[column], reverse=True)[:5]:
            name = SHORT_NAMES.get(p["province"], p["province"])
            ax.annotate(
                f"{text(name)} {_rate(float(p[column]))}",
                (p["longitude"], p["latitude"]),
                xytext=(7, -3),
                textcoords="offset points",
                fontsize=7,
            )
        bar = fig.colorbar(dots, ax=ax, orientation="horizontal", fraction=0.035, pad=0.01, shrink=0.8)
        bar.ax.tick_params(labelsize=7)
        bar.ax.xaxis.set_major_locator(MaxNLocator(4))
        bar.ax.xaxis.set_major_formatter(COUNTS)
        ax.set_title(title, loc="left", fontsize=10)
        ax.set(xlim=MAP_LON, ylim=MAP_LAT, aspect=1 / 0.8)
        ax.set_axis_off()
    fig.suptitle(
        f"Rates per province of residence (registry of {registry_date:%d %b %Y}; 2022 census)"
        if registry_date
        else "Rates per province of residence (2022 census)",
        x=0.02,
        ha="left",
        fontsize=11,
        fontweight="bold",
    )
    fig.subplots_adjust(left=0.01, right=0.99, top=0.94, bottom=0.02, wspace=0.05)
    return png_base64(fig)


def fatality_range(rows: list[dict]) -> str:
    """Case fatality per age band as a range: from deaths / (confirmed + suspected) to deaths / confirmed, the
    values written as the page's table writes them (`rate_with_suspected`, `rate`: percentages)."""
    shown = [r for r in rows if r["rate"] is not None]
    fig, ax = _axes(width=7.0, height=max(1.8, 0.4 * len(shown) + 0.9))
    for y, r in enumerate(reversed(shown)):
        low, high = float(r["rate_with_suspected"]), float(r["rate"])
        ax.plot([low, high], [y, y], color=DEATHS, lw=3, alpha=0.35, solid_capstyle="round")
        ax.plot([high], [y], "o", color=DEATHS, ms=6)
        ax.plot([low], [y], "o", color="white", markeredgecolor=DEATHS, ms=6)
        ax.annotate(
            f"{r['rate_with_suspected']:.1f}–{r['rate']:.1f}%",
            (high, y),
            xytext=(8, -3),
            textcoords="offset points",
            fontsize=8,
        )
    ax.set_yticks(range(len(shown)), [text(r["age_band"]) for r in reversed(shown)])
    ax.set_xlabel("case fatality rate (%): ○ with suspected cases in the denominator, ● confirmed only")
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.2, y=0.15)
    ax.set_xlim(left=0)
    return png_base64(fig)
