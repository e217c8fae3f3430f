"""`covid-pipeline`: run the whole pipeline on the bundled sample, open the Dagster UI on it, or reach the warehouse."""

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import psycopg

from covid_pipeline.instance import prepare_dagster_home
from covid_pipeline.metabase import provision as metabase_provision
from covid_pipeline.metabase import setup as metabase_setup
from covid_pipeline.resources.database import url_from_environment
from covid_pipeline.resources.embedded_postgres import client_binary

SAMPLE = files("covid_pipeline") / "data" / "sample"


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


# The console logger's level when the demo prints its own step lines (the instance keeps every event).
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def demo(args: argparse.Namespace) -> int:
    """Materialize every asset in the local Dagster instance; sources default to the bundled sample."""
    use_sample_sources()
    home = prepare_dagster_home()
    from dagster import DagsterInstance
    from dagster._core.utils import make_new_run_id

    from covid_pipeline.console import StepLines
    from covid_pipeline.definitions import defs

    print(f"covid-pipeline demo: the whole graph, recorded in the Dagster instance {home}")
    with DagsterInstance.get() as instance:
        run_id = make_new_run_id()
        if not args.verbose:
            instance.add_event_listener(run_id, StepLines(print).on_event)
        result = defs.resolve_job_def("refresh_everything").execute_in_process(
            instance=instance, run_id=run_id, run_config={} if args.verbose else QUIET, raise_on_error=False
        )
    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                print(
                    f"{event.step_key} failed:\n{failure_message(event.step_failure_data)}", file=sys.stderr
                )
        print("covid-pipeline demo: the run failed (see above).", file=sys.stderr)
        return 1
    print(summary())
    print(next_steps(run_id))
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
    command += ["--working-directory", str(Path(__file__).resolve().parents[1])]
    # A shell's background job starts with Ctrl-C ignored, and Dagster maps SIGTERM onto it: restore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # Started from the instance's folder: from the repo's root, Dagster would warn that the dagster.yaml it
    # finds there is not the instance's (it is the same settings, copied into the instance).
    absolute_local_paths()
    os.chdir(home)
    os.execv(sys.executable, command)


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


def failure_message(failure) -> str:
    """What went wrong, for a person: a Failure's description, else the innermost error's message."""
    if failure.user_failure_data and failure.user_failure_data.description:
        return failure.user_failure_data.description
    error = failure.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip()


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
    """The warehouse's URL (no Dagster to import), or a one-line refusal when its server does not answer."""
    try:
        return url_from_environment(keep_running)
    except psycopg.OperationalError as error:
        which = "COVID_DATABASE_URL" if os.environ.get("COVID_DATABASE_URL") else "the embedded server"
        raise SystemExit(
            f"covid-pipeline: the warehouse did not answer ({which}): {error}".rstrip()
        ) from None


def db_url(args: argparse.Namespace) -> int:
    # An embedded server is left running for other programs.
    print(warehouse_url(keep_running=True))
    return 0


def psql(args: argparse.Namespace) -> int:
    """psql on the warehouse (the one shipped with pgserver: no client to install)."""
    return subprocess.call([str(client_binary("psql")), warehouse_url(), *args.psql_args])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="covid-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_command = commands.add_parser(
        "demo", help="run every asset end to end (bundled sample unless COVID_*_URL are set)"
    )
    demo_command.add_argument(
        "--verbose", action="store_true", help="print Dagster's every event, not one line a step"
    )
    demo_command.set_defaults(run=demo)
    dev_command = commands.add_parser(
        "dev", help="the Dagster UI and daemon on the bundled sample (unless COVID_*_URL are set)"
    )
    dev_command.add_argument("--port", type=int, default=3000)
    dev_command.add_argument("--host", default="127.0.0.1")
    dev_command.set_defaults(run=dev)
    commands.add_parser(
        "dagster-home",
        help="print the local Dagster instance's folder, creating it (export DAGSTER_HOME=$(covid-pipeline dagster-home))",
    ).set_defaults(run=dagster_home)
    commands.add_parser(
        "db-url", help="print the warehouse URL (starting the embedded server if needed, and leaving it up)"
    ).set_defaults(run=db_url)
    commands.add_parser(
        "psql", help="open psql on the warehouse (further arguments go to psql, e.g. -c 'SELECT 1')"
    ).set_defaults(run=psql)
    metabase = commands.add_parser("metabase", help="Metabase dashboards as code")
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
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "psql":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.psql_args = extra
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
