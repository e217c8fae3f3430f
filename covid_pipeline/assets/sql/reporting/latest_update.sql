-- reporting.latest_update: how current the data is (one row). The original analysis: "ultima_actualizacion".
-- (covid.daily_aggregates' dates are the cases' fecha_apertura: the same dates without a scan of every case.)
--   last_updated      the registry's own ultima_actualizacion, as recorded by the load that produced covid.cases
--                     (covid.loads is written in the same transaction, and reading it avoids a scan of every case)
--   reference_date    the latest notification date (fecha_apertura) in covid.cases. Every "last month" and
--                     "last two months" in this schema ends on it, NOT on today's date: the registry is historical
--                     (a file published on 2020-11-23 says nothing about today), so windows relative to now()
--                     would be empty for any file but today's.
--   first_date        the earliest notification date
--   last_month_start, last_two_months_start
--                     the first days of "the last month" and "the last two months": the windows
--                     (reference_date - 1 month, reference_date] and (reference_date - 2 months, reference_date],
--                     defined here once for every view that uses them
CREATE TABLE {table} AS
WITH dates AS (
    SELECT (SELECT last_updated FROM covid.loads ORDER BY load_id DESC LIMIT 1) AS last_updated,
           (SELECT max(date) FROM covid.daily_aggregates)                      AS reference_date,
           (SELECT min(date) FROM covid.daily_aggregates)                      AS first_date
)
SELECT last_updated,
       reference_date,
       first_date,
       (reference_date - interval '1 month')::date + 1  AS last_month_start,
       (reference_date - interval '2 months')::date + 1 AS last_two_months_start
  FROM dates;
