-- reporting.epidemic_curve: the national epidemic curve, per day: confirmed cases by notification date and deaths by date of death.
-- Deaths are those of confirmed cases. Both with their 7-day averages (the day and the six before, divided by 7;
-- NULL on the first six days). The daily counts are the provinces' (see epidemic_curve_by_province: same days, from
-- the first notification to the publication, same exclusions) added up.
CREATE TABLE {table} AS
WITH daily AS (
    SELECT date, sum(confirmed) AS confirmed, sum(deaths) AS deaths
      FROM reporting.epidemic_curve_by_province
     GROUP BY date
)
SELECT date,
       confirmed::bigint                     AS confirmed,
       deaths::bigint                        AS deaths,
       CASE WHEN count(*) OVER w = 7 THEN round(sum(confirmed) OVER w / 7.0, 2) END AS confirmed_7day_avg,
       CASE WHEN count(*) OVER w = 7 THEN round(sum(deaths) OVER w / 7.0, 2) END    AS deaths_7day_avg
  FROM daily
WINDOW w AS (ORDER BY date ROWS BETWEEN 6 PRECEDING AND CURRENT ROW);
