-- reporting.map_by_department: confirmed cases and deaths per georef department of residence (placed via the crosswalk) at its centroid.
-- Deaths of confirmed cases, over the whole registry, at georef's department centroid (latitude, longitude).
-- Departments are placed through covid.department_crosswalk (CABA's comunas, Tierra del Fuego's old codes, ...): a case whose department is
-- SIN ESPECIFICAR is not here (map_by_province has its province's total). Only departments with confirmed cases.
CREATE TABLE {table} AS
SELECT aggregates.georef_department_id,
       departments.name                                      AS department,
       departments.province_id,
       coalesce(provinces.name, departments.province_name)   AS province,
       departments.centroid_lat                              AS latitude,
       departments.centroid_lon                              AS longitude,
       sum(aggregates.confirmed)::bigint                     AS confirmed,
       sum(aggregates.deaths)::bigint                        AS deaths,
       (SELECT last_updated FROM reporting.latest_update)    AS registry_date
  FROM covid.daily_aggregates AS aggregates
  JOIN covid.departments ON departments.department_id = aggregates.georef_department_id
  LEFT JOIN covid.provinces ON provinces.province_id = departments.province_id
 GROUP BY 1, 2, 3, 4, 5, 6
HAVING sum(aggregates.confirmed) > 0
 ORDER BY confirmed DESC, department;
