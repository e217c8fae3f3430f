"""The demo's console: one line per step of the run (Dagster's own console prints some 70 DEBUG lines),
and the reason a failed step gives, for a person."""

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

from dagster import DagsterEventType, EventLogEntry

from covid_pipeline.progress import PREFIX

# The materialization metadata by which cleaned_cases says it kept covid.cases as it was.
UNCHANGED = "unchanged_source"


class StepLines:
    """Reads a run's events (from its event log) and prints what each step did."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.rows: dict[str, list[int]] = defaultdict(list)
        self.unchanged: set[str] = set()
        self.checks: dict[str, list[str]] = defaultdict(list)
        # (step, reason) of each failed step, or (None, reason) for a run that failed before any step
        self.failures: list[tuple[str | None, str]] = []

    def on_event(self, entry: EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None:
            if entry.user_message.startswith(PREFIX):  # a long download or load: keep the person informed
                self.write(f"    {entry.step_key or ''} {entry.user_message}")
            return
        step, data = event.step_key, event.event_specific_data
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            metadata = data.materialization.metadata
            if rows := metadata.get("dagster/row_count"):
                self.rows[step].append(rows.value)
            if (unchanged := metadata.get(UNCHANGED)) and unchanged.value:
                self.unchanged.add(step)
        elif event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION:
            self.checks[step].append(
                "" if data.passed else f"{data.check_name} {data.severity.value.lower()}"
            )
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            self.write(
                f"  ok     {step:<36} {data.duration_ms / 1000:5.1f} s  {self._details(step)}".rstrip()
            )
        elif event.event_type == DagsterEventType.STEP_UP_FOR_RETRY:
            self.write(f"  retry  {step}")
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            self.write(f"  FAILED {step}")
            self.failures.append((step, failure_message(data)))
        elif event.event_type == DagsterEventType.STEP_SKIPPED:
            self.write(f"  skip   {step} (an upstream step failed)")
        elif event.event_type == DagsterEventType.RUN_FAILURE and not self.failures:
            self.failures.append((None, _innermost(data.error) if data and data.error else event.message))

    def reason(self) -> str:
        """One line: why the run failed."""
        if not self.failures:
            return "the run did not succeed"
        step, reason = self.failures[0]
        first_line = reason.strip().splitlines()[0] if reason.strip() else "no reason given"
        return f"{step} failed: {first_line}" if step else first_line

    def _details(self, step: str) -> str:
        checks = self.checks.pop(step, [])
        failed = [c for c in checks if c]
        passed = f"{len(checks) - len(failed)} of {len(checks)} checks passed" if checks else ""
        rows = _rows(self.rows.pop(step, []))
        if step in self.unchanged:
            rows = f"{rows}, unchanged (the file of the last load)" if rows else "unchanged"
        return ", ".join([*filter(None, [rows, passed]), *failed])


def every_event(write: Callable[[str], None]) -> Callable[[EventLogEntry], None]:
    """An event handler that prints each event as Dagster's console does (demo --verbose)."""

    def on_event(entry: EventLogEntry) -> None:
        kind = (
            entry.dagster_event.event_type.name if entry.dagster_event else ""
        )  # RUN_FAILURE, as Dagster prints it
        when = datetime.fromtimestamp(entry.timestamp).strftime("%Y-%m-%d %H:%M:%S")
        level = logging.getLevelName(entry.level)
        write(f"{when} - {level} - {entry.run_id[:8]} - {entry.step_key or ''} - {kind} - {entry.message}")

    return on_event


def failure_message(failure) -> str:
    """What went wrong, for a person: a Failure's description, else the innermost error's message."""
    if failure.user_failure_data and failure.user_failure_data.description:
        return failure.user_failure_data.description
    return _innermost(failure.error)


def _innermost(error) -> str:
    while error.cause is not None:
        error = error.cause
    message = error.message.strip()
    # "covid_pipeline.resources.sources.DownloadError: cases: ..." -> "cases: ..."
    head, separator, rest = message.partition(": ")
    return rest if separator and head.rsplit(".", 1)[-1] == error.cls_name else message


def _rows(counts: list[int]) -> str:
    """A step's row counts: one table's, or the sum over the tables of a multi-asset step."""
    if len(counts) > 1:
        return f"{len(counts)} tables, {sum(counts):,} rows"
    return f"{counts[0]:,} rows" if counts else ""
