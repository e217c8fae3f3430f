"""daily_aggregates: counts per day and place, computed inside PostgreSQL from covid.cases."""

from dagster import AssetExecutionContext, MaterializeResult, MetadataValue, asset
from psycopg import sql

from covid_pipeline.assets.cases import cleaned_cases
from covid_pipeline.assets.crosswalk import department_crosswalk
from covid_pipeline.assets.failures import behind_cases, failures_for_people
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.swap import swap_in
from covid_pipeline.resources.warehouse import WarehouseResource

TABLE, INCOMING = "daily_aggregates", "daily_aggregates__incoming"


def build_daily_aggregates(conn) -> dict:
    """Rebuild covid.daily_aggregates in the caller's transaction; returns its totals."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("covid", INCOMING)))
    conn.execute(
        sql.SQL(read_sql("covid_pipeline.assets.sql", "daily_aggregates.sql")).format(
            table=sql.Identifier("covid", INCOMING), key=sql.Identifier(f"{INCOMING}_key")
        )
    )
    swap_in(conn, "covid", INCOMING, TABLE)
    row = conn.execute(
        """SELECT count(*), coalesce(sum(notified), 0), coalesce(sum(confirmed), 0), coalesce(sum(deaths), 0),
                  coalesce(sum(icu), 0), coalesce(sum(ventilated), 0), min(date), max(date),
                  coalesce(sum(notified) FILTER (WHERE georef_department_id IS NOT NULL), 0)
             FROM covid.daily_aggregates"""
    ).fetchone()
    keys = (
        "rows",
        "notified",
        "confirmed",
        "deaths",
        "icu",
        "ventilated",
        "first_date",
        "last_date",
        "placed",
    )
    return dict(zip(keys, row, strict=True))


@asset(
    deps=[cleaned_cases, department_crosswalk],
    group_name="cases",
    kinds={"postgres"},
    description="covid.daily_aggregates(date, province_id, department_id, georef_department_id, notified, confirmed, "
    "deaths, icu, ventilated, discarded)",
)
def daily_aggregates(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    with (
        failures_for_people(behind_cases("covid.daily_aggregates"), database=warehouse.location()),
        warehouse.connect() as conn,
    ):
        totals = build_daily_aggregates(conn)
    context.log.info(
        f"covid.daily_aggregates: {totals['rows']:,} rows, {totals['confirmed']:,} confirmed cases"
    )
    metadata = {
        name: MetadataValue.int(int(value)) for name, value in totals.items() if isinstance(value, int)
    }
    metadata["dagster/row_count"] = MetadataValue.int(int(totals["rows"]))
    metadata["dates"] = MetadataValue.text(f"{totals['first_date']} .. {totals['last_date']}")
    return MaterializeResult(metadata=metadata)
