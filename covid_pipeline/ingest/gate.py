"""The load's gate: refuse a registry that looks damaged before it replaces `covid.cases`.

It runs inside the load's transaction, after COPY and before the swap, so a refused file leaves the
previous tables exactly as they were (the asset checks report the same figures after a load).
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from covid_pipeline.ingest.errors import SourceFormatError

if TYPE_CHECKING:
    from covid_pipeline.ingest.loader import LoadReport


class LoadRefused(SourceFormatError):
    """The file parsed, but too much of it is missing or rejected to trust it."""


@dataclass(frozen=True)
class LoadLimits:
    max_rejected_share: float = 1.0  # 1.0: no limit
    max_row_drop: float = 1.0  # fraction of the previous load's rows that may disappear


NO_LIMITS = LoadLimits()


def enforce(limits: LoadLimits, report: "LoadReport", previous_rows: int | None) -> None:
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
    if previous_rows and report.rows_loaded < previous_rows * (1 - limits.max_row_drop):
        drop = 1 - report.rows_loaded / previous_rows
        raise LoadRefused(
            f"{report.source_name}: {report.rows_loaded:,} cases, {drop:.1%} fewer than the "
            f"{previous_rows:,} of the previous load (at most {limits.max_row_drop:.0%} may disappear): "
            f"a truncated or partial publication? To load it anyway, raise COVID_MAX_ROW_DROP "
            "(the quality resource's max_row_drop, 1.0 accepts any drop) and run again."
        )
