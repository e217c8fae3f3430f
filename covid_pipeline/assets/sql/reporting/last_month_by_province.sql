-- reporting.last_month_by_province: confirmed cases notified in the last month, by province of residence.
-- "Last month" is (reference_date - 1 month, reference_date], reference_date being the registry's publication date
-- (see latest_update), not today. Names are georef's; residencia_provincia_id 99 (SIN ESPECIFICAR) and any id
-- georef does not know are "Unknown". Every georef province and Unknown is listed, with 0 when it has no case
-- (and share_pct NULL when the month has none at all).
CREATE TABLE {table} AS
WITH period AS (
    SELECT last_month_start AS period_start, reference_date AS period_end FROM reporting.latest_update
), counts AS (
    SELECT coalesce(provinces.name, 'Unknown') AS province, sum(aggregates.confirmed) AS confirmed
      FROM covid.daily_aggregates AS aggregates
     CROSS JOIN period
      LEFT JOIN covid.provinces USING (province_id)
     WHERE aggregates.date BETWEEN period.period_start AND period.period_end
     GROUP BY 1
), places AS (
    SELECT name AS province FROM covid.provinces UNION SELECT 'Unknown'
)
SELECT period.period_start,
       period.period_end,
       places.province,
       coalesce(counts.confirmed, 0)::bigint                                                      AS confirmed,
       round(100.0 * coalesce(counts.confirmed, 0) / nullif(sum(counts.confirmed) OVER (), 0), 2) AS share_pct
  FROM places
 CROSS JOIN period
  LEFT JOIN counts USING (province);
