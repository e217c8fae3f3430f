-- reporting.map_by_province: confirmed cases and deaths per province at georef's centroid, for the maps.
-- Deaths of confirmed cases, by province of residence over the whole registry, at georef's province centroid
-- (latitude, longitude). Of them, how many are placed
-- on a department (map_by_department): the rest say SIN ESPECIFICAR for the department. Cases whose province is
-- unknown (99) have no place on a map and are not listed (case_fatality_by_province counts them).
-- registry_date: the registry's ultima_actualizacion, so that a map always says which publication it shows.
CREATE TABLE {table} AS
SELECT aggregates.province_id,
       provinces.name                                                                           AS province,
       provinces.centroid_lat                                                                   AS latitude,
       provinces.centroid_lon                                                                   AS longitude,
       sum(aggregates.confirmed)::bigint                                                        AS confirmed,
       sum(aggregates.deaths)::bigint                                                           AS deaths,
       (sum(aggregates.confirmed) FILTER (WHERE aggregates.georef_department_id IS NOT NULL))::bigint
                                                                                                AS confirmed_placed,
       (sum(aggregates.deaths) FILTER (WHERE aggregates.georef_department_id IS NOT NULL))::bigint
                                                                                                AS deaths_placed,
       (SELECT last_updated FROM reporting.latest_update)                                       AS registry_date
  FROM covid.daily_aggregates AS aggregates
  JOIN covid.provinces USING (province_id)
 GROUP BY 1, 2, 3, 4
HAVING sum(aggregates.confirmed) > 0
 ORDER BY confirmed DESC, province;
