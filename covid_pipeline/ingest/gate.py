"""The load's gate: refuse a registry that looks damaged before it replaces `covid.cases`.

It runs inside the load's transaction, after COPY and before the swap, so a refused file leaves the
previous tables exactly as they were (the asset checks report the same figures after a load). What it
judges is known only at the end of the stream: the shares of rejected, duplicated and empty rows, the
publication's date, and the row count against the previous load's.
"""

import math
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

from covid_pipeline.ingest.errors import SourceFormatError
from covid_pipeline.ingest.registry_format import FILLED_COLUMNS

if TYPE_CHECKING:
    from covid_pipeline.ingest.loader import LoadReport


class LoadRefused(SourceFormatError):
    """The file parsed, but too much of it is missing, rejected or suspicious to trust it."""


@dataclass(frozen=True)
class LoadLimits:
    """The gate's limits; the defaults let everything through (the quality resource sets the real ones)."""

    max_rejected_share: float = 1.0
    max_row_drop: float = 1.0  # fraction of the previous load's rows that may disappear
    max_row_growth: float = math.inf  # fraction of the previous load's rows that may be added
    max_duplicate_share: float = 1.0
    max_empty_share: float = 1.0  # of the accepted rows, per column of FILLED_COLUMNS
    allow_older_publication: bool = True


NO_LIMITS = LoadLimits()


class LatestLoad(NamedTuple):
    """The load the current `covid.cases` came from, as covid.loads recorded it."""

    load_id: int
    source_sha256: str
    rows_loaded: int
    last_updated: date | None


class GateTally:
    """Counts the gate needs from the rows as they stream past: how many accepted rows leave each column
    of FILLED_COLUMNS empty (a null count per chunk, nothing per row)."""

    def __init__(self):
        self.rows = 0
        self.empty = dict.fromkeys((c.source for c in FILLED_COLUMNS), 0)

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for column in FILLED_COLUMNS:
            self.empty[column.source] += table.column(column.target).null_count


def enforce(
    limits: LoadLimits, report: "LoadReport", latest: LatestLoad | None, tally: GateTally | None = None
) -> None:
    """Raise LoadRefused, naming the figures and the setting to change, when a limit is passed."""
    rejected_share = report.rows_rejected / report.rows_read if report.rows_read else 0.0
    if rejected_share > limits.max_rejected_share:
        first = report.sample_rejects[0] if report.sample_rejects else None
        example = (
            f" The first: line {first.line_number}, {first.column_name or 'whole row'}: {first.reason}."
            if first
            else ""
        )
        raise LoadRefused(
            f"{report.source_name}: {report.rows_rejected:,} of {report.rows_read:,} rows "
            f"({rejected_share:.1%}) break the registry format, more than the {limits.max_rejected_share:.1%} "
            f"allowed.{example} If the publication really is like this, raise "
            "COVID_MAX_REJECTED_SHARE (the quality resource's max_rejected_share) and run again."
        )
    _refuse_duplicates(limits, report)
    if tally is not None:
        _refuse_empty_columns(limits, report.source_name, tally)
    if latest is None:
        return
    _refuse_older_publication(limits, report, latest)
    against_previous = {
        "source": report.source_name,
        "rows": report.rows_loaded,
        "unit": "cases",
        "baseline": latest.rows_loaded,
        "baseline_is": "of the previous load",
    }
    refuse_row_drop(
        **against_previous,
        max_drop=limits.max_row_drop,
        setting="max_row_drop",
        suspicion="a truncated or partial publication?",
    )
    refuse_row_growth(
        **against_previous,
        max_growth=limits.max_row_growth,
        setting="max_row_growth",
        suspicion="every case twice under new ids, or another file than the registry?",
    )


def _refuse_duplicates(limits: LoadLimits, report: "LoadReport") -> None:
    accepted = report.rows_loaded + report.duplicate_rows
    share = report.duplicate_rows / accepted if accepted else 0.0
    if share > limits.max_duplicate_share:
        raise LoadRefused(
            f"{report.source_name}: {report.duplicate_rows:,} of {accepted:,} accepted rows ({share:.1%}) repeat "
            f"an id_evento_caso that an earlier line of the file already has, more than the "
            f"{limits.max_duplicate_share:.1%} allowed: the export probably went wrong (rows written several "
            "times). Fetch the publication again; to load it anyway (each id keeps its last line), raise "
            "COVID_MAX_DUPLICATE_SHARE (the quality resource's max_duplicate_share) and run again."
        )


def _refuse_empty_columns(limits: LoadLimits, source: str, tally: GateTally) -> None:
    if not tally.rows:
        return
    emptied = {
        name: empty for name, empty in tally.empty.items() if empty / tally.rows > limits.max_empty_share
    }
    if emptied:
        figures = "; ".join(
            f"{name} in {empty:,} of {tally.rows:,} accepted rows ({empty / tally.rows:.1%})"
            for name, empty in emptied.items()
        )
        raise LoadRefused(
            f"{source}: empty {figures}, more than the {limits.max_empty_share:.0%} allowed. SISA fills "
            f"{'this column' if len(emptied) == 1 else 'these columns'} in every row, and the daily counts and "
            "reports are built on them: the export is probably damaged. Fetch the publication again; to load "
            "it anyway, raise COVID_MAX_EMPTY_SHARE (the quality resource's max_empty_share) and run again."
        )


def _refuse_older_publication(limits: LoadLimits, report: "LoadReport", latest: LatestLoad) -> None:
    new, held = report.last_updated, latest.last_updated
    if limits.allow_older_publication or new is None or held is None or new >= held:
        return
    raise LoadRefused(
        f"{report.source_name}: its publication date, {new} (the most common ultima_actualizacion of its "
        f"rows), is older than {held}, the publication date of the registry covid.cases holds (load "
        f"{latest.load_id}): loading it would roll the tables and the reports back {(held - new).days} day(s). "
        "Check the source (COVID_CASES_URL); to go back to this publication on purpose, set "
        "COVID_ALLOW_OLDER_PUBLICATION=yes (the quality resource's allow_older_publication) and run again."
    )


def refuse_row_drop(
    source: str,
    rows: int,
    unit: str,
    baseline: int | None,
    *,
    baseline_is: str,
    max_drop: float,
    setting: str,
    suspicion: str,
) -> None:
    """Raise LoadRefused when `rows` is more than `max_drop` (a fraction) below `baseline`, naming the figures
    and the quality setting (COVID_<SETTING>) that would let the file through. The registry's gate and the
    georef files' gate both refuse a shrunken file this way."""
    if baseline and rows < baseline * (1 - max_drop):
        drop = 1 - rows / baseline
        raise LoadRefused(
            f"{source}: {rows:,} {unit}, {drop:.1%} fewer than the {baseline:,} {baseline_is} "
            f"(at most {max_drop:.0%} may disappear): {suspicion} To load it anyway, raise "
            f"COVID_{setting.upper()} (the quality resource's {setting}, 1.0 accepts any drop) and run again."
        )


def refuse_row_growth(
    source: str,
    rows: int,
    unit: str,
    baseline: int | None,
    *,
    baseline_is: str,
    max_growth: float,
    setting: str,
    suspicion: str,
) -> None:
    """Raise LoadRefused when `rows` is more than `max_growth` (a fraction) above `baseline`: the mirror of
    refuse_row_drop, for a file that is suddenly much larger than the one it would replace."""
    if baseline and rows > baseline * (1 + max_growth):
        growth = rows / baseline - 1
        raise LoadRefused(
            f"{source}: {rows:,} {unit}, {growth:.1%} more than the {baseline:,} {baseline_is} "
            f"(at most {max_growth:.0%} more allowed): {suspicion} To load it anyway, raise "
            f"COVID_{setting.upper()} (the quality resource's {setting}; a large number such as 1000 accepts "
            "any growth) and run again."
        )
