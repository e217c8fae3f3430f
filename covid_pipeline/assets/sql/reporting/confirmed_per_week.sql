-- reporting.confirmed_per_week: confirmed cases per week (Monday to Sunday) of notification over the last two months, with the change against the week before.
-- "Last two months" ends on reference_date, the registry's publication date (see latest_update), not on today nor
-- on the latest date in the data: the weeks shown are those that overlap (reference_date - 2 months,
-- reference_date], i.e. from the week of last_two_months_start to the week of reference_date, with 0 for a week
-- without cases. The first week shown has a change too (against the week before it).
-- The last week is usually cut short by the publication: complete_week says whether all its seven days are in it.
CREATE TABLE {table} AS
WITH ref AS (
    SELECT reference_date, date_trunc('week', last_two_months_start)::date AS first_week FROM reporting.latest_update
), weekly AS (
    SELECT date_trunc('week', aggregates.date)::date AS week_start, sum(aggregates.confirmed) AS confirmed
      FROM covid.daily_aggregates AS aggregates, ref
     WHERE aggregates.date BETWEEN ref.first_week - 7 AND ref.reference_date
     GROUP BY 1
), weeks AS (
    SELECT generate_series(first_week - 7, reference_date, interval '1 week')::date AS week_start FROM ref
), series AS (
    SELECT weeks.week_start,
           coalesce(weekly.confirmed, 0)                                          AS confirmed,
           lag(coalesce(weekly.confirmed, 0)) OVER (ORDER BY weeks.week_start)   AS previous_week_confirmed
      FROM weeks
      LEFT JOIN weekly USING (week_start)
)
SELECT series.week_start,
       series.week_start + 6                                                           AS week_end,
       series.confirmed::bigint                                                        AS confirmed,
       series.previous_week_confirmed::bigint                                          AS previous_week_confirmed,
       (series.confirmed - series.previous_week_confirmed)::bigint                     AS change,
       round(100.0 * (series.confirmed - series.previous_week_confirmed)
             / nullif(series.previous_week_confirmed, 0), 1)                           AS change_pct,
       series.week_start + 6 <= ref.reference_date                                     AS complete_week
  FROM series, ref
 WHERE series.week_start >= ref.first_week;
