-- reporting.epidemic_curve_by_province: per province of residence and day, confirmed cases by notification date and deaths by date of death.
-- Confirmed cases by fecha_apertura, deaths of confirmed cases by fecha_fallecimiento, with their 7-day averages
-- (the day and the six before it, divided by 7; NULL on the first six days, which have no six days before them).
-- Every day from the first notification (latest_update.first_date) to the publication (reference_date) is listed
-- for every province that has any case, with 0 on days without one, so the averages are true averages. Days after
-- latest_update.last_notification_date hold no notification: the registry (or the extract of it) ends there.
-- Notifications and deaths dated outside those days are typing errors and left out (case_fatality_by_province
-- still counts them). An empty province is 99, SIN ESPECIFICAR: "Unknown".
CREATE TABLE {table} AS
WITH span AS (
    SELECT first_date, reference_date AS last_date FROM reporting.latest_update
), confirmed AS (
    SELECT aggregates.date, coalesce(aggregates.province_id, 99) AS province_id, sum(aggregates.confirmed) AS confirmed
      FROM covid.daily_aggregates AS aggregates, span
     WHERE aggregates.date BETWEEN span.first_date AND span.last_date
     GROUP BY 1, 2
    HAVING sum(confirmed) > 0
), deaths AS (
    SELECT breakdown.death_date AS date, breakdown.death_province_id AS province_id, sum(breakdown.confirmed) AS deaths
      FROM covid.case_breakdown AS breakdown, span
     WHERE breakdown.death_province_id IS NOT NULL
       AND breakdown.death_date BETWEEN span.first_date AND span.last_date
     GROUP BY 1, 2
), places AS (
    SELECT province_id FROM confirmed UNION SELECT province_id FROM deaths
), days AS (
    SELECT generate_series(first_date, last_date, interval '1 day')::date AS date FROM span
), daily AS (
    SELECT days.date, places.province_id,
           coalesce(confirmed.confirmed, 0) AS confirmed,
           coalesce(deaths.deaths, 0)       AS deaths
      FROM days
     CROSS JOIN places
      LEFT JOIN confirmed USING (date, province_id)
      LEFT JOIN deaths USING (date, province_id)
)
SELECT daily.date,
       daily.province_id,
       coalesce(provinces.name, 'Unknown')                                      AS province,
       daily.confirmed::bigint                                                  AS confirmed,
       daily.deaths::bigint                                                     AS deaths,
       CASE WHEN count(*) OVER w = 7 THEN round(sum(daily.confirmed) OVER w / 7.0, 2) END AS confirmed_7day_avg,
       CASE WHEN count(*) OVER w = 7 THEN round(sum(daily.deaths) OVER w / 7.0, 2) END    AS deaths_7day_avg
  FROM daily
  LEFT JOIN covid.provinces USING (province_id)
WINDOW w AS (PARTITION BY daily.province_id ORDER BY daily.date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW);
