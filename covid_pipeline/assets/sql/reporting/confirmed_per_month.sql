-- reporting.confirmed_per_month: confirmed cases per month of notification, and each month's share of all
-- confirmed cases (percent). Months without cases between the first and the last appear with 0.
CREATE TABLE {table} AS
WITH monthly AS (
    SELECT date_trunc('month', date)::date AS month, sum(confirmed) AS confirmed
      FROM covid.daily_aggregates
     WHERE date IS NOT NULL
     GROUP BY 1
), months AS (
    SELECT generate_series(min(month), max(month), interval '1 month')::date AS month FROM monthly
)
SELECT months.month,
       coalesce(monthly.confirmed, 0)::bigint                                                 AS confirmed,
       round(100.0 * coalesce(monthly.confirmed, 0) / nullif(sum(monthly.confirmed) OVER (), 0), 2)
                                                                                              AS share_of_total_pct
  FROM months
  LEFT JOIN monthly USING (month);
