-- reporting.confirmed_per_month: confirmed cases per month of notification, and each month's share of all confirmed cases (percent).
-- Every month from the first notification's to the publication's (see latest_update) is listed, with 0 for a month
-- without cases; notifications dated outside that span are typing errors, left out.
CREATE TABLE {table} AS
WITH span AS (
    SELECT first_date, reference_date FROM reporting.latest_update
), monthly AS (
    SELECT date_trunc('month', aggregates.date)::date AS month, sum(aggregates.confirmed) AS confirmed
      FROM covid.daily_aggregates AS aggregates, span
     WHERE aggregates.date BETWEEN span.first_date AND span.reference_date
     GROUP BY 1
), months AS (
    SELECT generate_series(date_trunc('month', first_date), reference_date, interval '1 month')::date AS month
      FROM span
)
SELECT months.month,
       coalesce(monthly.confirmed, 0)::bigint                                                 AS confirmed,
       round(100.0 * coalesce(monthly.confirmed, 0) / nullif(sum(monthly.confirmed) OVER (), 0), 2)
                                                                                              AS share_of_total_pct
  FROM months
  LEFT JOIN monthly USING (month);
