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
    refuse_row_drop(
        report.source_name,
        report.rows_loaded,
        "cases",
        previous_rows,
        baseline_is="of the previous load",
        max_drop=limits.max_row_drop,
        setting="max_row_drop",
        suspicion="a truncated or partial publication?",
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
    """Raise LoadRefused when `rows` is more than `max_drop` below `baseline`, naming the figures and the
    quality setting (COVID_<SETTING>) that would let the file through. The registry's gate and the georef
    files' gate both refuse a shrunken file this way."""
    if baseline and rows < baseline * (1 - max_drop):
        drop = 1 - rows / baseline
        raise LoadRefused(
            f"{source}: {rows:,} {unit}, {drop:.1%} fewer than the {baseline:,} {baseline_is} "
            f"(at most {max_drop:.0%} may disappear): {suspicion} To load it anyway, raise "
            f"COVID_{setting.upper()} (the quality resource's {setting}, 1.0 accepts any drop) and run again."
        )
