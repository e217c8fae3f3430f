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
        ax.plot(
            days, [float(r[f"{column}_7day_avg"]) for r in rows], color=color, lw=2, label="7-day average"
        )
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
        ax.plot(
            [p["date"] for p in points], [float(p["confirmed_7day_avg"]) for p in points], color=CONFIRMED
        )
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
