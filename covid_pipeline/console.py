"""The demo's console: one line per step of the run (Dagster's own console prints some 70 DEBUG lines)."""

from collections import defaultdict
from collections.abc import Callable

from dagster import DagsterEventType
from dagster._core.events.log import EventLogEntry

from covid_pipeline.progress import PREFIX


class StepLines:
    """An event listener of a run (DagsterInstance.add_event_listener) that prints what each step did."""

    def __init__(self, write: Callable[[str], None]):
        self.write = write
        self.rows: dict[str, list[int]] = defaultdict(list)
        self.checks: dict[str, list[str]] = defaultdict(list)

    def on_event(self, entry: EventLogEntry) -> None:
        event = entry.dagster_event
        if event is None:
            if entry.user_message.startswith(PREFIX):  # a long download or load: keep the person informed
                self.write(f"    {entry.step_key or ''} {entry.user_message}")
            return
        step, data = event.step_key, event.event_specific_data
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            if rows := data.materialization.metadata.get("dagster/row_count"):
                self.rows[step].append(rows.value)
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
        elif event.event_type == DagsterEventType.STEP_SKIPPED:
            self.write(f"  skip   {step} (an upstream step failed)")

    def _details(self, step: str) -> str:
        checks = self.checks.pop(step, [])
        failed = [c for c in checks if c]
        passed = f"{len(checks) - len(failed)} of {len(checks)} checks passed" if checks else ""
        return ", ".join([*filter(None, [_rows(self.rows.pop(step, [])), passed]), *failed])


def _rows(counts: list[int]) -> str:
    """A step's row counts: one table's, or the sum over the tables of a multi-asset step."""
    if len(counts) > 1:
        return f"{len(counts)} tables, {sum(counts):,} rows"
    return f"{counts[0]:,} rows" if counts else ""
