-- reporting.epidemic_curve: the national epidemic curve, per day: confirmed cases by notification date and
-- deaths of confirmed cases by date of death, with their 7-day averages (the day and the six before, divided by 7).
-- The daily counts are the provinces' (see epidemic_curve_by_province: same days, same exclusions) added up.
CREATE TABLE {table} AS
WITH daily AS (
    SELECT date, sum(confirmed) AS confirmed, sum(deaths) AS deaths
      FROM reporting.epidemic_curve_by_province
     GROUP BY date
)
SELECT date,
       confirmed::bigint                     AS confirmed,
       deaths::bigint                        AS deaths,
       round(sum(confirmed) OVER w / 7.0, 2) AS confirmed_7day_avg,
       round(sum(deaths) OVER w / 7.0, 2)    AS deaths_7day_avg
  FROM daily
WINDOW w AS (ORDER BY date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW);
