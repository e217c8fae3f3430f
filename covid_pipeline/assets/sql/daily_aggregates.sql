-- covid.daily_aggregates: counts per day of notification (fecha_apertura) and residence.
-- deaths / icu / ventilated count confirmed cases only; discarded counts clasificacion_resumen = Descartado (the
-- tests that ruled COVID-19 out: positivity's denominator with the confirmed).
-- georef_department_id: the georef department the residence lands on (covid.department_crosswalk); NULL
-- when the registry says SIN ESPECIFICAR (department 0, province 99), the code is in no georef release, or its
-- exception in data/department_crosswalk.yaml no longer matches the loaded release (the codes_known_to_georef
-- check lists those codes; rules_match, the rules). Joined after grouping: a few thousand groups, not every case.
-- Hashing the groups in memory (not sorting 1M+ rows) and splitting the scan between workers halves
-- the time: the planner over-estimates the groups tenfold and, by default, picks neither. At 8M rows it
-- even walked the index on opened_date to sort-group (2.5 times slower): sorting is ruled out here, and a
-- hash table larger than work_mem would spill to disk rather than fail.
SET LOCAL work_mem = '64MB';
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL enable_sort = off;
SET LOCAL enable_incremental_sort = off;
CREATE TABLE {table} AS
WITH counts AS (
    SELECT opened_date                                                                   AS date,
           residence_province_id                                                         AS province_id,
           residence_department_id                                                       AS department_id,
           count(*)                                                                      AS notified,
           count(*) FILTER (WHERE classification_summary = 'Confirmado')                 AS confirmed,
           count(*) FILTER (WHERE classification_summary = 'Descartado')                 AS discarded,
           count(*) FILTER (WHERE classification_summary = 'Confirmado' AND deceased)    AS deaths,
           count(*) FILTER (WHERE classification_summary = 'Confirmado' AND icu)         AS icu,
           count(*) FILTER (WHERE classification_summary = 'Confirmado' AND ventilated)  AS ventilated
      FROM covid.cases
     GROUP BY 1, 2, 3
)
SELECT counts.date, counts.province_id, counts.department_id, crosswalk.georef_department_id,
       counts.notified, counts.confirmed, counts.deaths, counts.icu, counts.ventilated, counts.discarded
  FROM counts
  LEFT JOIN covid.department_crosswalk AS crosswalk USING (province_id, department_id);

ALTER TABLE {table} ADD CONSTRAINT {key} UNIQUE NULLS NOT DISTINCT (date, province_id, department_id);
