-- reporting.case_fatality_by_province: case fatality rate per province of residence, over the whole registry.
-- The rate is deaths of confirmed cases / confirmed cases, in percent (the crude CFR: cases still ill are counted
-- as survivors, so recent weeks pull it down). Provinces without confirmed cases are not listed.
CREATE TABLE {table} AS
SELECT coalesce(aggregates.province_id, 99)                            AS province_id,
       coalesce(provinces.name, 'Unknown')                             AS province,
       sum(aggregates.confirmed)::bigint                               AS confirmed,
       sum(aggregates.deaths)::bigint                                  AS deaths,
       round(100.0 * sum(aggregates.deaths) / sum(aggregates.confirmed), 2) AS case_fatality_rate_pct
  FROM covid.daily_aggregates AS aggregates
  LEFT JOIN covid.provinces USING (province_id)
 GROUP BY 1, 2
HAVING sum(aggregates.confirmed) > 0;
