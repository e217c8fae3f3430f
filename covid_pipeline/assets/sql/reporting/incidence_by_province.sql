-- reporting.incidence_by_province: confirmed cases and deaths of confirmed cases per 100,000 residents of each province, whole registry.
-- population: the 2022 census, final results (INDEC; covid.province_population, from
-- covid_pipeline/data/province_population.yaml, which names the source). Rates are cumulative over every
-- notification in the registry, by province of residence. Every census province is listed (0 cases when none);
-- cases whose province is not recorded (99, SIN ESPECIFICAR: "Unknown") or not in the census have a row without
-- population or rates, so the rows add up to every confirmed case: the country's rate is
-- 100000 * sum(confirmed) / sum(population) over all rows.
CREATE TABLE {table} AS
WITH counts AS (
    SELECT coalesce(province_id, 99) AS province_id, sum(confirmed) AS confirmed, sum(deaths) AS deaths
      FROM covid.daily_aggregates
     GROUP BY 1
), places AS (
    SELECT province_id FROM covid.province_population UNION SELECT province_id FROM counts
)
SELECT places.province_id,
       coalesce(provinces.name, population.province, 'Unknown')                         AS province,
       population.population,
       coalesce(counts.confirmed, 0)::bigint                                             AS confirmed,
       coalesce(counts.deaths, 0)::bigint                                                AS deaths,
       round(100000.0 * coalesce(counts.confirmed, 0) / population.population, 2)        AS confirmed_per_100k,
       round(100000.0 * coalesce(counts.deaths, 0) / population.population, 2)           AS deaths_per_100k
  FROM places
  LEFT JOIN counts USING (province_id)
  LEFT JOIN covid.province_population AS population USING (province_id)
  LEFT JOIN covid.provinces USING (province_id);
