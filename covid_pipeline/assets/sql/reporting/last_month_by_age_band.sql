-- reporting.last_month_by_age_band: confirmed cases notified in the last month, by age band.
-- Bands 0-19, 20-39, 40-59, 60-79, 80+, and Unknown when the age was not published.
-- "Last month" is (reference_date - 1 month, reference_date], reference_date being the registry's publication
-- date (see latest_update), not today. Ages are whole years (babies' ages in months count as 0).
-- Every band (covid.age_bands) is listed, with 0 when it has no case. Read from covid.case_breakdown.
CREATE TABLE {table} AS
WITH period AS (
    SELECT last_month_start AS period_start, reference_date AS period_end FROM reporting.latest_update
), counts AS (
    SELECT coalesce(bands.age_band, 'Unknown') AS age_band, sum(breakdown.confirmed) AS confirmed
      FROM covid.case_breakdown AS breakdown
     CROSS JOIN period
      LEFT JOIN covid.age_bands AS bands ON bands.min_age = breakdown.age_band_start
     WHERE breakdown.opened_date BETWEEN period.period_start AND period.period_end
     GROUP BY 1
)
SELECT period.period_start,
       period.period_end,
       bands.age_band,
       coalesce(counts.confirmed, 0)::bigint                                                      AS confirmed,
       round(100.0 * coalesce(counts.confirmed, 0) / nullif(sum(counts.confirmed) OVER (), 0), 2) AS share_pct,
       bands.sort_order
  FROM covid.age_bands AS bands
 CROSS JOIN period
  LEFT JOIN counts USING (age_band);
