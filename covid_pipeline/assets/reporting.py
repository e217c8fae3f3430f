"""reporting_marts: one small table per published analysis, in the `reporting` schema, for the report and Metabase.

Tables rebuilt after each load, not views: a view over covid.cases costs a scan of every case for every reader
(1.5 s per card at 8M rows). One scan of covid.cases (case_groups.sql) gives what the marts need beyond
covid.daily_aggregates: covid.case_breakdown (sex, age band, date of death, suspected cases) and
covid.onset_breakdown (symptom onset);
every mart is then derived from those small tables, the georef ones, covid.province_population (the census, from
data/province_population.yaml) and covid.age_bands. Each mart is an asset of one multi-asset step (can_subset: a selection rebuilds only
what it names). All of them are built in one transaction, each under a loading name and swapped in with
swap.swap_in, so a reader sees the previous load's marts until the new ones are complete, and the SELECT
grants (metabase_reader) carry over.
"""

from collections.abc import Iterator
from importlib.resources import files

import yaml
from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, MetadataValue, multi_asset
from psycopg import sql

from covid_pipeline.assets.aggregates import daily_aggregates
from covid_pipeline.assets.cases import cleaned_cases
from covid_pipeline.assets.failures import behind_cases, failures_for_people
from covid_pipeline.assets.reference import departments, provinces
from covid_pipeline.resources.database import read_sql
from covid_pipeline.resources.swap import swap_in
from covid_pipeline.resources.warehouse import WarehouseResource

SCHEMA = "reporting"
BREAKDOWN, ONSETS, POPULATION, AGE_BANDS = (
    "case_breakdown",
    "onset_breakdown",
    "province_population",
    "age_bands",
)
INPUTS = (BREAKDOWN, ONSETS, POPULATION, AGE_BANDS)  # in covid: inputs of the marts, not analyses
SCANNED = (BREAKDOWN, ONSETS)  # from case_groups.sql, one scan of covid.cases
POPULATION_FILE = "province_population.yaml"

# Every table this step builds, in build order (later ones read earlier ones), with what each reads.
READS: dict[str, list] = {
    BREAKDOWN: [cleaned_cases],
    ONSETS: [cleaned_cases],
    POPULATION: [],
    AGE_BANDS: [],
    "latest_update": [cleaned_cases, daily_aggregates],
    "confirmed_per_year": [daily_aggregates, "latest_update"],
    "confirmed_per_month": [daily_aggregates, "latest_update"],
    "confirmed_per_week": [daily_aggregates, "latest_update"],
    "last_month_by_sex": [BREAKDOWN, "latest_update"],
    "last_month_by_age_band": [BREAKDOWN, AGE_BANDS, "latest_update"],
    "last_month_by_province": [daily_aggregates, provinces, "latest_update"],
    "epidemic_curve_by_province": [daily_aggregates, provinces, BREAKDOWN, "latest_update"],
    "epidemic_curve": ["epidemic_curve_by_province"],
    "case_fatality_by_province": [daily_aggregates, provinces],
    "map_by_province": [daily_aggregates, provinces, "latest_update"],
    "map_by_department": [daily_aggregates, departments, provinces, "latest_update"],
    "positivity_by_province_week": [daily_aggregates, provinces, "latest_update"],
    "positivity_by_week": ["positivity_by_province_week"],
    "incidence_by_province": [daily_aggregates, provinces, POPULATION],
    "notification_delay": [ONSETS, "latest_update"],
    "notification_delay_summary": ["notification_delay", provinces],
    "epidemic_curve_onset_by_province": [ONSETS, provinces, "latest_update"],
    "epidemic_curve_onset": ["epidemic_curve_onset_by_province"],
    "case_fatality_by_age_band": [BREAKDOWN, AGE_BANDS],
}
MARTS = tuple(name for name in READS if name not in INPUTS)


def schema_of(name: str) -> str:
    return "covid" if name in INPUTS else SCHEMA


def key_of(name: str) -> AssetKey:
    return AssetKey([schema_of(name), name])


def mart_sql(name: str) -> str:
    folder = "" if name in INPUTS else "reporting/"
    return read_sql("covid_pipeline.assets.sql", f"{folder}{name}.sql")


def census_populations() -> list[dict]:
    """The provinces' census populations (data/province_population.yaml, which names its source)."""
    text = files("covid_pipeline").joinpath("data", POPULATION_FILE).read_text(encoding="utf-8")
    return yaml.safe_load(text)["provinces"]


def build_marts(conn, names: list[str] | tuple[str, ...] = tuple(READS)) -> dict[str, int]:
    """Rebuild the named tables (in READS order) in the caller's transaction; the row count of each."""
    rows, scanned = {}, False
    for name in [n for n in READS if n in names]:
        schema, incoming = schema_of(name), f"{name}__incoming"
        if name in SCANNED and not scanned:  # the one scan of covid.cases both breakdowns are taken from
            conn.execute(read_sql("covid_pipeline.assets.sql", "case_groups.sql"))
            scanned = True
        # the reporting layer used to be views of the same names: replaced the first time
        if conn.execute(
            "SELECT EXISTS (SELECT FROM pg_views WHERE schemaname = %s AND viewname = %s)", (schema, name)
        ).fetchone()[0]:
            conn.execute(sql.SQL("DROP VIEW {} CASCADE").format(sql.Identifier(schema, name)))
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(schema, incoming)))
        conn.execute(sql.SQL(mart_sql(name)).format(table=sql.Identifier(schema, incoming)))
        if name == POPULATION:
            with conn.cursor() as cursor:
                cursor.executemany(
                    sql.SQL("INSERT INTO {} VALUES (%(id)s, %(name)s, %(population)s)").format(
                        sql.Identifier(schema, incoming)
                    ),
                    census_populations(),
                )
        swap_in(conn, schema, incoming, name)
        rows[name] = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))
        ).fetchone()[0]
    # Default privileges only cover tables created by the role that ran the migration: grant explicitly.
    if conn.execute("SELECT to_regrole('metabase_reader') IS NOT NULL").fetchone()[0]:
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO metabase_reader")
    return rows


@multi_asset(
    specs=[
        AssetSpec(
            key_of(name),
            deps=[key_of(d) if isinstance(d, str) else d for d in reads],
            group_name="reporting",
            kinds={"postgres"},
            description=mart_sql(name).split("\n", 1)[0].removeprefix("-- ").strip(),
        )
        for name, reads in READS.items()
    ],
    can_subset=True,
    name="reporting_marts",
)
def reporting_marts(
    context: AssetExecutionContext, warehouse: WarehouseResource
) -> Iterator[MaterializeResult]:
    selected = [name for name in READS if key_of(name) in context.selected_asset_keys]
    with failures_for_people(behind_cases("The reporting tables")), warehouse.connect() as conn:
        rows = build_marts(conn, selected)
        dates = conn.execute("SELECT last_updated, reference_date FROM reporting.latest_update").fetchone()
    context.log.info(f"{len(rows)} reporting tables rebuilt, data up to {dates[1]} (published {dates[0]})")
    for name, count in rows.items():
        yield MaterializeResult(
            asset_key=key_of(name),
            metadata={
                "dagster/row_count": MetadataValue.int(count),
                "table": MetadataValue.text(f"{schema_of(name)}.{name}"),
                "last_updated": MetadataValue.text(str(dates[0])),
            },
        )
