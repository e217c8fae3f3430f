-- reporting.confirmed_per_year: confirmed cases per calendar year of notification (fecha_apertura).
-- Cases without a notification date are not counted in any time series.
CREATE TABLE {table} AS
SELECT extract(year FROM date)::integer AS year,
       sum(confirmed)::bigint          AS confirmed
  FROM covid.daily_aggregates
 WHERE date IS NOT NULL
 GROUP BY 1;
