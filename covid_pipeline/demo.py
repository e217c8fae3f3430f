"""`covid-pipeline demo`: one run of the job `refresh_everything`, made the way the UI makes runs.

The run is submitted to the local instance's queue with its code location's origin (Dagster's own
`dagster job launch`), so the UI treats it like any other run: it is listed on the job's page and on the
timeline, and it can be re-executed. The instance's daemon starts it: the daemon of a running
`covid-pipeline dev` (the run then waits its turn, one run at a time), else one that the demo runs for
as long as its run lasts. Dagster's own output goes to a log file in the instance; the console shows one
line per step, read from the run's event log (every event with --verbose).
"""

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, EventLogEntry

from covid_pipeline.instance import daemon_processes

JOB = "refresh_everything"
# The package as this process found it (a checkout that is not installed, too).
CODE_LOCATION = ["-m", "covid_pipeline.definitions", "--working-directory", str(Path(__file__).parents[1])]
POLL_SECONDS = 0.2
# A queued run says why it waits once it has waited this long.
QUEUED_NOTICE_SECONDS = 5.0


class DemoError(RuntimeError):
    """Dagster could not start or finish the run (its log file has the details)."""


def run_job(
    instance: DagsterInstance,
    home: Path,
    on_event: Callable[[EventLogEntry], None],
    write: Callable[[str], None],
) -> DagsterRun:
    """Submit a run of the job, have a daemon start it, pass its events to `on_event` until it ends."""
    run_id = str(uuid.uuid4())
    # (not "logs": Dagster empties that folder, its telemetry's, when telemetry is off)
    log_path = home / "demo-logs" / f"{run_id[:8]}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        daemon = None if daemon_processes(home) else _start_daemon(log, home)
        try:
            submitted = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "dagster",
                    "job",
                    "launch",
                    *CODE_LOCATION,
                    "-j",
                    JOB,
                    "--run-id",
                    run_id,
                ],
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            if submitted.returncode != 0 or instance.get_run_by_id(run_id) is None:
                raise DemoError(f"Dagster could not submit the run (its output: {log_path})")
            return _follow(instance, run_id, on_event, write, daemon, log_path)
        except KeyboardInterrupt:
            with contextlib.suppress(Exception):  # a run that is already over cannot be cancelled
                instance.run_coordinator.cancel_run(run_id)
            raise
        finally:
            if daemon is not None:
                _stop(daemon)


def _follow(instance, run_id, on_event, write, daemon, log_path) -> DagsterRun:
    cursor, queued_since, noticed = None, time.monotonic(), False
    while True:
        # the status first: the events read after it include every event up to that status
        run = instance.get_run_by_id(run_id)
        page = instance.get_records_for_run(run_id, cursor=cursor)
        for record in page.records:
            on_event(record.event_log_entry)
        cursor = page.cursor
        if run.is_finished and not page.has_more:
            return run
        waited = time.monotonic() - queued_since
        if run.status == DagsterRunStatus.QUEUED and not noticed and waited > QUEUED_NOTICE_SECONDS:
            write(f"  queued behind {_in_progress(instance, run_id)} (one run at a time)")
            noticed = True
        if daemon is not None and daemon.poll() is not None:
            raise DemoError(
                f"the Dagster daemon stopped with code {daemon.returncode} (its output: {log_path})"
            )
        if not page.has_more:
            time.sleep(POLL_SECONDS)


def _in_progress(instance: DagsterInstance, run_id: str) -> str:
    from dagster import RunsFilter

    others = [
        run.run_id[:8]
        for run in instance.get_runs(
            filters=RunsFilter(statuses=[DagsterRunStatus.STARTING, DagsterRunStatus.STARTED])
        )
        if run.run_id != run_id
    ]
    return f"run {', '.join(others)}" if others else "the runs ahead of it"


def _start_daemon(log, home: Path) -> subprocess.Popen:
    """Dagster's daemon on the instance (the same command `dagster dev` starts), ended with the demo."""
    return subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", *CODE_LOCATION],
        cwd=home,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_end_with_parent,
    )


def _end_with_parent() -> None:
    """On Linux, the daemon gets SIGTERM when the demo dies (even by SIGKILL): no daemon outlives it."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _stop(daemon: subprocess.Popen, timeout: float = 30) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGINT)  # Dagster's own shutdown
    try:
        daemon.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()
