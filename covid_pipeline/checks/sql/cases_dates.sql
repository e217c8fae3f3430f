-- Dates before the start of the epidemic (the quality resource's earliest_date) or after the publication's
-- date, per date column. The publication's date is its most common ultima_actualizacion (as its load recorded
-- it), never later than the day the file was loaded: a few rows dated 2099 must not lift the bound and let
-- future dates pass. dates: covid.cases' rows per column and day, as its load counted them or counted now
-- (checks/query.py). One row per column with dates (and one with no column when there are none at all).
WITH latest_load AS (
    SELECT last_updated, started_at FROM covid.loads ORDER BY load_id DESC LIMIT 1
), bounds AS (
    SELECT %(earliest)s::date AS earliest,
           coalesce((SELECT least(last_updated, started_at::date) FROM latest_load), current_date) AS latest
)
SELECT d.column_name, bounds.earliest, bounds.latest,
       coalesce(sum(d.rows), 0)::bigint                                                          AS dated,
       coalesce(sum(d.rows) FILTER (WHERE d.day NOT BETWEEN bounds.earliest AND bounds.latest), 0)::bigint AS outside
  FROM bounds LEFT JOIN ({dates}) AS d ON true
 GROUP BY d.column_name, bounds.earliest, bounds.latest;
