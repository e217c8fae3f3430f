-- reporting.confirmed_per_year: confirmed cases per calendar year of notification (fecha_apertura).
-- From the first notification to the publication (see latest_update). Cases without a notification date, or dated outside that
-- span (typing errors), are not counted in any time series.
CREATE TABLE {table} AS
SELECT extract(year FROM aggregates.date)::integer AS year,
       sum(aggregates.confirmed)::bigint          AS confirmed
  FROM covid.daily_aggregates AS aggregates, reporting.latest_update AS span
 WHERE aggregates.date BETWEEN span.first_date AND span.reference_date
 GROUP BY 1;
