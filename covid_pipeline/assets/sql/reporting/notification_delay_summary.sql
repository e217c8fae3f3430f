-- reporting.notification_delay_summary: median and 90th percentile of the days from symptom onset to notification, per province and month of notification, and for the country.
-- Over notification_delay's cases (confirmed, onset 0 to 30 days before notification). The country is the rows
-- with province_id NULL and province 'Argentina' (percentiles do not add up: they are computed from all its cases).
-- median_days and p90_days are whole days, as percentile_disc gives them: the smallest delay with at least half
-- (nine tenths) of the month's cases at or below it.
CREATE TABLE {table} AS
WITH grouped AS (
    SELECT province_id, month, delay_days, sum(cases) AS cases
      FROM reporting.notification_delay
     GROUP BY GROUPING SETS ((province_id, month, delay_days), (month, delay_days))
), cumulative AS (
    SELECT province_id, month, delay_days,
           sum(cases) OVER (PARTITION BY province_id, month ORDER BY delay_days) AS at_or_below,
           sum(cases) OVER (PARTITION BY province_id, month)                     AS total
      FROM grouped
)
SELECT cumulative.province_id,
       CASE WHEN cumulative.province_id IS NULL THEN 'Argentina'
            ELSE coalesce(provinces.name, 'Unknown') END                               AS province,
       cumulative.month,
       cumulative.total::bigint                                                        AS cases,
       min(cumulative.delay_days) FILTER (WHERE cumulative.at_or_below >= 0.5 * cumulative.total) AS median_days,
       min(cumulative.delay_days) FILTER (WHERE cumulative.at_or_below >= 0.9 * cumulative.total) AS p90_days
  FROM cumulative
  LEFT JOIN covid.provinces USING (province_id)
 GROUP BY cumulative.province_id, provinces.name, cumulative.month, cumulative.total;
