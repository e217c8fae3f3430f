-- reporting.positivity_by_week: test positivity of the whole country per week (Monday to Sunday) of notification.
-- The provinces' confirmed and discarded cases (positivity_by_province_week: same weeks, same exclusions) added up;
-- positivity = confirmed / (confirmed + discarded), NULL when both are 0.
CREATE TABLE {table} AS
SELECT week_start,
       sum(confirmed)::bigint                                                  AS confirmed,
       sum(discarded)::bigint                                                  AS discarded,
       round(sum(confirmed) / nullif(sum(confirmed) + sum(discarded), 0), 4)   AS positivity
  FROM reporting.positivity_by_province_week
 GROUP BY week_start;
