"""Everything Dagster loads: assets, checks, resources, schedule and sensor.

Local and AWS differ only in environment variables (see README): unset ones fall back to the
local defaults (embedded PostgreSQL, folders under $COVID_HOME, the official source URLs).
"""

import atexit
import gc
import os

from dagster import Definitions, EnvVar, in_process_executor

from covid_pipeline.assets.aggregates import daily_aggregates
from covid_pipeline.assets.cases import cleaned_cases
from covid_pipeline.assets.codebook import codebook
from covid_pipeline.assets.crosswalk import department_crosswalk
from covid_pipeline.assets.exports import exports
from covid_pipeline.assets.raw import raw_csv_s3
from covid_pipeline.assets.reference import departments, provinces
from covid_pipeline.assets.report import report
from covid_pipeline.assets.reporting import reporting_marts
from covid_pipeline.automation import daily_refresh, new_publication, refresh_everything
from covid_pipeline.checks.aggregates import aggregates_checks
from covid_pipeline.checks.cases import cases_checks
from covid_pipeline.checks.crosswalk import crosswalk_checks
from covid_pipeline.checks.reporting import reporting_checks
from covid_pipeline.resources.quality import QualityResource
from covid_pipeline.resources.sources import (
    OFFICIAL_CASES_URL,
    OFFICIAL_DEPARTMENTS_URL,
    OFFICIAL_PROVINCES_URL,
    SourcesResource,
)
from covid_pipeline.resources.stores import StoreResource, check_store_setting
from covid_pipeline.resources.warehouse import WarehouseResource


def setting(name: str, default: str = "") -> str | EnvVar:
    """The env var when it is set (resolved by Dagster at run time, kept out of the UI), else `default`."""
    return EnvVar(name) if os.environ.get(name) else default


# Read at run time, but refused here, when the code loads: a mistyped URL would otherwise become a folder.
check_store_setting("COVID_RAW_STORE")
check_store_setting("COVID_REPORTS_STORE")

resources = {
    "warehouse": WarehouseResource(
        database_url=setting("COVID_DATABASE_URL"), database_password=setting("COVID_DATABASE_PASSWORD")
    ),
    "raw_store": StoreResource(location=setting("COVID_RAW_STORE"), default_folder="raw"),
    "reports_store": StoreResource(location=setting("COVID_REPORTS_STORE"), default_folder="reports"),
    "sources": SourcesResource(
        cases_url=setting("COVID_CASES_URL", OFFICIAL_CASES_URL),
        provinces_url=setting("COVID_PROVINCES_URL", OFFICIAL_PROVINCES_URL),
        departments_url=setting("COVID_DEPARTMENTS_URL", OFFICIAL_DEPARTMENTS_URL),
    ),
    "quality": QualityResource.from_env(),
}

all_assets = [
    raw_csv_s3,
    provinces,
    departments,
    department_crosswalk,
    cleaned_cases,
    daily_aggregates,
    reporting_marts,
    codebook,
    exports,
    report,
]
all_checks = [cases_checks, *aggregates_checks, *crosswalk_checks, *reporting_checks]

defs = Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[refresh_everything],
    schedules=[daily_refresh],
    sensors=[new_publication],
    resources=resources,
    # One process runs the whole graph (CLI, UI, schedule, sensor, ECS run task alike): the steps form a
    # chain, so a process per step would only add its start-up (seconds each) and memory. See README.
    executor=in_process_executor,
)

# Everything imported so far (Dagster, pandas, pyarrow, these definitions) lives as long as the process:
# keep it out of the garbage collector's full passes, during the run and at interpreter exit (a second
# or more per process otherwise). What a run leaves behind is frozen at exit too, for the same reason
# (about 0.2 s off every CLI run and run worker).
gc.freeze()
atexit.register(gc.freeze)
