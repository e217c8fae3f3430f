"""reporting_views: one view per published analysis, in the `reporting` schema, for the report and Metabase.

Plain views: always current, nothing to refresh, and warehouse.swap_in recreates them whenever covid.cases or
covid.daily_aggregates is swapped in by a later load. This asset (re)creates them from the .sql files in
assets/sql/reporting/, all in one transaction, so a changed definition never leaves the schema half built.
"""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg import sql

from covid_pipeline.assets.aggregates import daily_aggregates
from covid_pipeline.assets.cases import cleaned_cases
from covid_pipeline.assets.failures import behind_cases, failures_for_people
from covid_pipeline.assets.reference import provinces
from covid_pipeline.resources.warehouse import WarehouseResource, read_sql

SCHEMA = "reporting"

# In creation order: later views read earlier ones (the windows read latest_update's reference date).
VIEWS = (
    "latest_update",
    "confirmed_per_year",
    "confirmed_per_month",
    "confirmed_per_week",
    "last_month_by_sex",
    "last_month_by_age_band",
    "last_month_by_province",
    "epidemic_curve_by_province",
    "epidemic_curve",
    "case_fatality_by_province",
)


def view_sql(name: str) -> str:
    return read_sql("covid_pipeline.assets.sql", f"reporting/{name}.sql")


def create_reporting_views(conn) -> dict[str, int]:
    """(Re)create every reporting view in the caller's transaction; returns the row count of each."""
    existing = conn.execute("SELECT viewname FROM pg_views WHERE schemaname = %s", (SCHEMA,)).fetchall()
    for (name,) in existing:  # views dropped from VIEWS go too
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA, name)))
    for name in VIEWS:
        conn.execute(view_sql(name))
    # Default privileges only cover objects created by the role that ran the migration: grant explicitly.
    if conn.execute("SELECT to_regrole('metabase_reader') IS NOT NULL").fetchone()[0]:
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO metabase_reader")
    return {
        name: conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(SCHEMA, name))
        ).fetchone()[0]
        for name in VIEWS
    }


@asset(
    deps=[cleaned_cases, daily_aggregates, provinces],
    group_name="reporting",
    kinds={"postgres"},
    description="One view per analysis in the reporting schema (readable by the metabase_reader role).",
)
def reporting_views(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with failures_for_people(behind_cases("The reporting schema")), warehouse.connect() as conn:
        rows = create_reporting_views(conn)
        last_updated, reference_date = conn.execute(
            "SELECT last_updated, reference_date FROM reporting.latest_update"
        ).fetchone()
    context.log.info(f"{len(rows)} reporting views, data up to {reference_date} (published {last_updated})")
    table = "\n".join(
        ["| view | rows |", "|---|---|"] + [f"| reporting.{n} | {c:,} |" for n, c in rows.items()]
    )
    return MaterializeResult(
        metadata={
            "views": MetadataValue.md(table),
            "last_updated": MetadataValue.text(str(last_updated)),
            "reference_date": MetadataValue.text(str(reference_date)),
        }
    )
