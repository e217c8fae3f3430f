-- reporting.last_month_by_province: confirmed cases notified in the last month, by province of residence.
-- "Last month" is (reference_date - 1 month, reference_date], reference_date being the latest notification date
-- in the data, not today (see latest_update). Names are georef's; residencia_provincia_id 99 (SIN ESPECIFICAR)
-- and any id georef does not know are "Unknown". Only provinces with at least one case are listed.
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
    HAVING sum(aggregates.confirmed) > 0
)
SELECT period.period_start,
       period.period_end,
       counts.province,
       counts.confirmed::bigint                                                 AS confirmed,
       round(100.0 * counts.confirmed / sum(counts.confirmed) OVER (), 2)       AS share_pct
  FROM counts
 CROSS JOIN period;
