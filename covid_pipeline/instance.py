"""The one local Dagster instance that `demo`, `dev`, `dagster dev`, `dagster asset materialize` and `dg` share.

It lives in $DAGSTER_HOME when that is set, else in $COVID_HOME/dagster, and holds the settings of the
packaged dagster.yaml. Plain `dagster ...` commands find it through DAGSTER_HOME:
`export DAGSTER_HOME=$(covid-pipeline dagster-home)`.
"""

import os
from importlib.resources import files
from pathlib import Path

from covid_pipeline.resources.embedded_postgres import default_home

SETTINGS = files("covid_pipeline") / "dagster.yaml"
# The first line of the packaged file: a dagster.yaml that starts with it was written by us, and is
# rewritten when the packaged one changes; any other dagster.yaml is the user's and is left alone.
MARKER = SETTINGS.read_text().splitlines()[0]


def dagster_home() -> Path:
    home = os.environ.get("DAGSTER_HOME")
    return Path(home).expanduser().resolve() if home else default_home().expanduser().resolve() / "dagster"


def prepare_dagster_home() -> Path:
    """Create the instance folder with the packaged settings, and point DAGSTER_HOME at it (for this
    process and the processes it starts)."""
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    target, wanted = home / "dagster.yaml", SETTINGS.read_text()
    current = target.read_text() if target.exists() else None
    if current is None or (current != wanted and current.startswith(MARKER)):
        target.write_text(wanted)
    os.environ["DAGSTER_HOME"] = str(home)
    _create_storage(home)
    return home


def _create_storage(home: Path) -> None:
    """Create the instance's databases now, one process at a time. Dagster creates them on first use, and
    two processes doing so at once (a `dagster asset materialize` and the daemon, a demo and the UI) can
    both stamp a fresh SQLite schema: "Version table 'alembic_version' has more than one head present",
    and every later command on that instance fails."""
    import fcntl

    from dagster import DagsterInstance

    with open(home / ".storage.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        DagsterInstance.from_config(str(home)).dispose()


def daemon_processes(home: Path) -> list[int]:
    """The pids of the Dagster daemons serving the instance in `home` on this machine: `dagster-daemon run`,
    or the one `dagster dev` / `dg dev` / `covid-pipeline dev` start (a process of its own, which outlives a
    killed parent: it is looked for, not assumed gone)."""
    import psutil

    found = []
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = process.info["cmdline"] or []
        if process.info["status"] == psutil.STATUS_ZOMBIE or not _is_daemon(cmdline):
            continue
        try:
            serves = process.environ().get("DAGSTER_HOME")
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if serves and Path(serves).expanduser().resolve() == home:
            found.append(process.info["pid"])
    return found


def _is_daemon(cmdline: list[str]) -> bool:
    return any(
        (arg == "dagster._daemon" or os.path.basename(arg) == "dagster-daemon") and following == "run"
        for arg, following in zip(cmdline, cmdline[1:], strict=False)
    )


def clear_abandoned_runs(instance, command: str) -> list[str]:
    """Mark failed the started runs whose process is gone (killed, or its machine restarted), so that the
    queue (one run at a time) moves on. Dagster's own run monitoring cannot see this for the local run
    launcher: it only ends runs past `max_runtime_seconds` (dagster.yaml)."""
    import psutil
    from dagster import DagsterEventType, DagsterRunStatus, RunsFilter

    cleared = []
    for run in instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        starts = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_START, limit=1).records
        if not starts:
            continue
        entry = starts[0].event_log_entry
        pid = entry.dagster_event.pid
        if pid is not None and _alive_since(psutil, pid, entry.timestamp):
            continue
        instance.report_run_failed(
            run,
            f"The run's process (pid {pid}) is gone: it was killed, or the machine stopped. "
            f"Marked failed by `covid-pipeline {command}` so that queued runs can start.",
        )
        cleared.append(run.run_id)
    return cleared


def _alive_since(psutil, pid: int, started: float) -> bool:
    """Whether process `pid` runs and is the one that existed at `started` (a pid is reused after its
    process ends)."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and process.create_time() <= started + 1
    except psutil.NoSuchProcess:
        return False
