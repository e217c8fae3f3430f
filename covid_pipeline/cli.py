"""covid-pipeline: run the whole pipeline on the bundled sample, open the Dagster UI on it, or reach the
warehouse. Settings are environment variables (COVID_*_URL, COVID_DATABASE_URL, ...): see docs/operations.md."""

import argparse
import importlib.util
import os
import signal
import socket
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import psycopg

from covid_pipeline.instance import daemon_processes, prepare_dagster_home
from covid_pipeline.metabase import provision as metabase_provision
from covid_pipeline.metabase import setup as metabase_setup
from covid_pipeline.resources.database import url_from_environment
from covid_pipeline.resources.embedded_postgres import client_binary, default_data_dir, stop_server
from covid_pipeline.resources.quality import SettingError

SAMPLE = files("covid_pipeline") / "data" / "sample"
ROOT = Path(__file__).resolve().parents[1]


def sample_sources() -> dict[str, str]:
    return {
        "COVID_CASES_URL": str(SAMPLE / "Covid19Casos.zip"),
        "COVID_PROVINCES_URL": str(SAMPLE / "provincias.csv"),
        "COVID_DEPARTMENTS_URL": str(SAMPLE / "departamentos.csv"),
    }


def use_sample_sources() -> None:
    """The bundled sample, unless COVID_*_URL say otherwise."""
    for name, value in sample_sources().items():
        os.environ.setdefault(name, value)


def load_definitions():
    """The project's definitions, loaded as Dagster loads them: a bad setting raises SettingError here,
    which `main` prints in one line (not the UI's "Empty graph", not a traceback)."""
    from covid_pipeline.definitions import defs

    return defs


def say(line: str) -> None:
    print(line, flush=True)


def demo(args: argparse.Namespace) -> int:
    """Materialize every asset in the local Dagster instance; sources default to the bundled sample."""
    use_sample_sources()
    home = prepare_dagster_home()
    load_definitions()
    from dagster import DagsterInstance, DagsterRunStatus

    from covid_pipeline.console import StepLines, every_event
    from covid_pipeline.demo import DemoError, run_job
    from covid_pipeline.instance import clear_abandoned_runs

    absolute_local_paths()  # Dagster's processes start in the instance's folder
    print(f"covid-pipeline demo: the whole graph, recorded in the Dagster instance {home}", flush=True)
    # one line a step; with --verbose, every event instead (the step lines still collect the reason)
    lines = StepLines((lambda line: None) if args.verbose else say)
    events = every_event(lambda line: print(line, file=sys.stderr, flush=True))

    def on_event(entry) -> None:
        if args.verbose:
            events(entry)
        lines.on_event(entry)

    # This process holds the embedded server from here: it is not stopped when the run's process ends and
    # started again for the summary. A warehouse that does not answer is named here, in one line.
    warehouse_url()
    with DagsterInstance.get() as instance:
        for run_id in clear_abandoned_runs(instance, "demo"):
            say(f"  run {run_id[:8]} had lost its process (killed?): marked failed")
        try:
            run = run_job(instance, home, on_event, say)
        except DemoError as error:
            print(f"covid-pipeline demo: {error}", file=sys.stderr)
            return 1
    if run.status != DagsterRunStatus.SUCCESS:
        print(f"covid-pipeline demo: {lines.reason()}", file=sys.stderr)
        return 1
    print(summary())
    print(next_steps(run.run_id))
    return 0


def next_steps(run_id: str) -> str:
    report = configured("reports_store").store().uri("latest.html")
    return "\n".join(
        [
            f"Report: {report}",
            "Next:",
            "  python -m covid_pipeline dev     the Dagster UI at http://127.0.0.1:3000, same sources: the lineage,",
            f"                                   this run ({run_id[:8]}), its check results and metadata",
            "  python -m covid_pipeline psql    the warehouse: -c 'SELECT * FROM reporting.latest_update'",
        ]
    )


def dev(args: argparse.Namespace) -> int:
    """Dagster's webserver and daemon on the bundled sample (unless COVID_*_URL are set), in the local instance."""
    use_sample_sources()
    home = prepare_dagster_home()
    # Refused before anything starts: a busy port (the webserver would fail but the rest stay up), a
    # second daemon on the instance (both would run the schedule and the sensor), a bad setting (the UI
    # would show an empty graph).
    if not port_is_free(args.host, args.port):
        raise SystemExit(
            f"covid-pipeline dev: port {args.port} on {args.host} is in use (another covid-pipeline dev?): "
            "stop that, or choose another port with --port."
        )
    refuse_second_daemon(home, "dev")
    load_definitions()
    from dagster import DagsterInstance

    from covid_pipeline.instance import clear_abandoned_runs

    with DagsterInstance.get() as instance:
        for run_id in clear_abandoned_runs(instance, "dev"):
            say(f"covid-pipeline dev: run {run_id[:8]} had lost its process (killed?): marked failed")
    print(
        f"covid-pipeline dev: Dagster UI at http://{args.host}:{args.port} (instance {home}; "
        f"registry {os.environ['COVID_CASES_URL']}). Ctrl-C stops it.",
        flush=True,
    )
    # `dg dev` with the module named: the same services as `dagster dev`, from any folder, without the
    # latter's "superseded" warning (`dagster dev` where dg, a dev dependency, is not installed).
    # exec: Ctrl-C and signals reach Dagster's own shutdown.
    cli = "dagster_dg_cli.cli" if importlib.util.find_spec("dagster_dg_cli") else "dagster"
    command = [sys.executable, "-m", cli, "dev", "-m", "covid_pipeline.definitions"]
    command += ["--port", str(args.port), "--host", args.host]
    # The code server imports the package from where this process found it (a checkout that is not
    # installed, too), not from the instance's folder it starts in.
    command += ["--working-directory", str(ROOT)]
    # A shell's background job starts with Ctrl-C ignored, and Dagster maps SIGTERM onto it: restore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Started from the instance's folder: from the repo's root, Dagster would warn that the dagster.yaml it
    # finds there is not the instance's (it is the same settings, copied into the instance).
    absolute_local_paths()
    os.chdir(home)
    os.execv(sys.executable, command)


def port_is_free(host: str, port: int) -> bool:
    """Whether the webserver can listen on host:port (bound as it binds: SO_REUSEADDR, so a port in
    TIME_WAIT after a previous run counts as free)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror:
        return True  # the webserver names the bad host itself
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def refuse_second_daemon(home: Path, command: str) -> None:
    if pids := daemon_processes(home):
        raise SystemExit(
            f"covid-pipeline {command}: a Dagster daemon already serves the instance {home} (pid "
            f"{', '.join(map(str, pids))}: another covid-pipeline dev, or a demo's run): stop it first."
        )


LOCAL_PATH_SETTINGS = ("COVID_CASES_URL", "COVID_PROVINCES_URL", "COVID_DEPARTMENTS_URL", "COVID_RAW_STORE")
LOCAL_PATH_SETTINGS += ("COVID_REPORTS_STORE", "COVID_HOME")


def absolute_local_paths() -> None:
    """Settings given as relative paths keep meaning the same files once the working folder changes."""
    for name in LOCAL_PATH_SETTINGS:
        value = os.environ.get(name)
        if value and "://" not in value and not os.path.isabs(value):
            os.environ[name] = os.path.abspath(value)


def dagster_home(args: argparse.Namespace) -> int:
    print(prepare_dagster_home())
    return 0


def configured(resource_key: str):
    """A resource as runs see it (env vars resolved), for commands outside a run."""
    from covid_pipeline.definitions import resources

    return resources[resource_key].process_config_and_initialize()


def configured_warehouse():
    return configured("warehouse")


def summary() -> str:
    warehouse = configured_warehouse()
    with warehouse.connect() as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in (
                "covid.cases",
                "covid.rejected_cases",
                "covid.daily_aggregates",
                "covid.provinces",
                "covid.departments",
                "covid.department_crosswalk",
            )
        }
    lines = [f"Warehouse: {warehouse.describe()}"] + [
        f"  {table:<28} {n:>10,} rows" for table, n in counts.items()
    ]
    return "\n".join(lines)


def warehouse_url(keep_running: bool = False) -> str:
    """The warehouse's URL (no Dagster to import), or a one-line refusal naming the setting when its
    server does not answer or its login may not create the warehouse's tables."""
    which = "COVID_DATABASE_URL" if os.environ.get("COVID_DATABASE_URL") else "the embedded server"
    try:
        return url_from_environment(keep_running)
    except psycopg.OperationalError as error:
        raise SystemExit(
            f"covid-pipeline: the warehouse did not answer ({which}): {error}".rstrip()
        ) from None
    except psycopg.errors.InsufficientPrivilege as error:
        raise SystemExit(
            f"covid-pipeline: the login of {which} may not create the warehouse's tables "
            f"({str(error).strip().splitlines()[0]}): grant it CREATE on the database, or set "
            "COVID_DATABASE_URL to the pipeline's own login."
        ) from None


def db_url(args: argparse.Namespace) -> int:
    # The embedded server is left running for other programs, until `covid-pipeline stop`.
    print(warehouse_url(keep_running=True))
    return 0


def psql(args: argparse.Namespace) -> int:
    """psql on the warehouse (the one shipped with pgserver: no client to install)."""
    return subprocess.call([str(client_binary("psql")), warehouse_url(), *args.psql_args])


def stop(args: argparse.Namespace) -> int:
    if os.environ.get("COVID_DATABASE_URL"):
        raise SystemExit("covid-pipeline stop: COVID_DATABASE_URL is set: that server is not ours to stop.")
    say(f"covid-pipeline stop: {stop_server(default_data_dir())}")
    return 0


PSQL_HELP = """\
Runs psql on the warehouse: COVID_DATABASE_URL, else the embedded server under $COVID_HOME (started if
needed). Every further argument goes to psql, e.g. covid-pipeline psql -c 'SELECT * FROM
reporting.latest_update'. psql's own help: covid-pipeline psql -- --help."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="covid-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str, run, **options) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description, **options)
        sub.set_defaults(run=run)
        return sub

    demo_command = command(
        "demo",
        "run every asset end to end (bundled sample unless COVID_*_URL are set)",
        "Runs the job refresh_everything once in the local Dagster instance, as the UI would (the UI then "
        "shows the run), and prints one line per step, the tables' row counts and the report's path. "
        "Sources are the bundled sample unless COVID_CASES_URL, COVID_PROVINCES_URL or "
        "COVID_DEPARTMENTS_URL are set.",
        demo,
    )
    demo_command.add_argument(
        "--verbose", action="store_true", help="print Dagster's every event, not one line a step"
    )
    dev_command = command(
        "dev",
        "the Dagster UI and daemon on the bundled sample (unless COVID_*_URL are set)",
        "Starts Dagster's webserver and daemon (dg dev) on the local instance, with the bundled sample as "
        "sources unless COVID_*_URL are set. One per instance; Ctrl-C stops it.",
        dev,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    dev_command.add_argument("--port", type=int, default=3000, help="port the UI listens on")
    dev_command.add_argument(
        "--host", default="127.0.0.1", help="address the UI listens on (0.0.0.0: every interface)"
    )
    command(
        "dagster-home",
        "print the local Dagster instance's folder",
        "Prints the local Dagster instance's folder ($DAGSTER_HOME, else $COVID_HOME/dagster), creating it "
        "with the project's dagster.yaml, for Dagster's own commands: "
        "export DAGSTER_HOME=$(covid-pipeline dagster-home).",
        dagster_home,
    )
    command(
        "db-url",
        "print the warehouse's URL, for other tools",
        "Prints the warehouse's URL: COVID_DATABASE_URL (with COVID_DATABASE_PASSWORD), else the embedded "
        "server's, which is started if needed and then kept running for other tools (notebooks, DBeaver, "
        "Metabase) until covid-pipeline stop.",
        db_url,
    )
    command("psql", "open psql on the warehouse (arguments go to psql)", PSQL_HELP, psql, add_help=False)
    command(
        "stop",
        "stop the embedded PostgreSQL server",
        "Stops the embedded PostgreSQL server under $COVID_HOME (its data stays), which db-url left running.",
        stop,
    )
    metabase = commands.add_parser(
        "metabase", help="Metabase dashboards as code", description="Metabase dashboards as code."
    )
    metabase_commands = metabase.add_subparsers(dest="metabase_command", required=True)
    provision = metabase_commands.add_parser(
        "provision", help="create or update the database connection, collection, cards and dashboard"
    )
    metabase_provision.add_arguments(provision)
    provision.set_defaults(run=metabase_provision.run)
    setup = metabase_commands.add_parser(
        "setup", help="complete Metabase's first-run setup with the given admin (the deployment runs it)"
    )
    metabase_setup.add_arguments(setup)
    setup.set_defaults(run=metabase_setup.run)

    if argv[:1] == ["psql"]:  # psql takes its own options: ours are only -h/--help alone
        if argv[1:] in (["-h"], ["--help"]):
            print(f"usage: covid-pipeline psql [psql's arguments]\n\n{PSQL_HELP}")
            return 0
        rest = argv[1:]
        args = argparse.Namespace(
            command="psql", run=psql, psql_args=rest[1:] if rest[:1] == ["--"] else rest
        )
    else:
        args = parser.parse_args(argv)
    try:
        return args.run(args)
    except SettingError as error:
        raise SystemExit(f"covid-pipeline {args.command}: {error}") from None


if __name__ == "__main__":
    sys.exit(main())
