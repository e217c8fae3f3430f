"""The report's charts: matplotlib figures rendered to PNG, ready to embed as base64 (no files, no server)."""

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display: assets run in workers and containers

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

CONFIRMED, DEATHS, MUTED = "#1f77b4", "#c0392b", "#9fb8d0"
# Whole numbers with separators; small fractional ticks (a 7-day average of 1.5) keep their decimals.
COUNTS = FuncFormatter(
    lambda value, _: f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:g}"
)


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


def horizontal_bars(labels: list[str], values: list[float], value_label: str, fmt: str = "{:,.0f}") -> str:
    """A bar per category, largest on top (the order given is kept top to bottom)."""
    fig, ax = _axes(height=max(1.6, 0.32 * len(labels) + 0.8))
    bars = ax.barh(labels[::-1], values[::-1], color=CONFIRMED)
    ax.bar_label(bars, labels=[fmt.format(v) for v in values[::-1]], fontsize=8, padding=3)
    ax.set_xlabel(value_label)
    ax.xaxis.set_major_formatter(COUNTS if "%" not in value_label else FuncFormatter(lambda v, _: f"{v:g}"))
    ax.grid(axis="y", visible=False)
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.12)
    return png_base64(fig)


def epidemic_curve(rows: list[dict], title: str = "") -> str:
    """Daily counts as pale bars, the 7-day average as a line: confirmed on top, deaths below."""
    days = [r["date"] for r in rows]
    fig, (top, bottom) = _axes(height=2.8, rows=2, sharex=True)
    for ax, column, color, label in (
        (top, "confirmed", CONFIRMED, "confirmed cases per day (by notification date)"),
        (bottom, "deaths", DEATHS, "deaths per day (by date of death)"),
    ):
        # one stepped area rather than a bar per day: same picture, one artist instead of a thousand
        ax.fill_between(
            days, [r[column] for r in rows], step="mid", color=color, alpha=0.25, lw=0, label="daily"
        )
        ax.plot(days, _values(rows, f"{column}_7day_avg"), color=color, lw=2, label="7-day average")
        ax.set_title(label, loc="left", fontsize=10)
        ax.yaxis.set_major_formatter(COUNTS)
        ax.legend(loc="best", frameon=False, fontsize=8)
    _date_axis(bottom)
    if title:
        fig.suptitle(title, x=0.02, ha="left", fontsize=12, fontweight="bold")
    return png_base64(fig)


def province_curves(series: dict[str, list[dict]]) -> str:
    """Small multiples: the 7-day average of confirmed cases of each province, each on its own scale."""
    names = list(series)
    columns = 2
    rows = (len(names) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(9, 2.1 * rows), sharex=True, squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        points = series[name]
        ax.plot([p["date"] for p in points], _values(points, "confirmed_7day_avg"), color=CONFIRMED)
        ax.set_title(name, loc="left", fontsize=9)
        ax.spines[["top", "right"]].set_visible(False)
        ax.yaxis.set_major_formatter(COUNTS)
        ax.grid(axis="y", alpha=0.3)
        _date_axis(ax, max_ticks=6)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.supylabel("confirmed per day, 7-day average", fontsize=9)
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
