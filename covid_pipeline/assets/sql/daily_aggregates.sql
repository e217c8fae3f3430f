-- covid.daily_aggregates: counts per day of notification (fecha_apertura) and residence.
-- deaths / icu / ventilated count confirmed cases only.
-- Hashing the groups in memory (not sorting 1M+ rows) and splitting the scan between workers halves
-- the time: the planner over-estimates the groups tenfold and, by default, picks neither.
SET LOCAL work_mem = '64MB';
SET LOCAL parallel_tuple_cost = 0;
CREATE TABLE {table} AS
SELECT opened_date                                                                   AS date,
       residence_province_id                                                         AS province_id,
       residence_department_id                                                       AS department_id,
       count(*)                                                                      AS notified,
       count(*) FILTER (WHERE classification_summary = 'Confirmado')                 AS confirmed,
       count(*) FILTER (WHERE classification_summary = 'Confirmado' AND deceased)    AS deaths,
       count(*) FILTER (WHERE classification_summary = 'Confirmado' AND icu)         AS icu,
       count(*) FILTER (WHERE classification_summary = 'Confirmado' AND ventilated)  AS ventilated
  FROM covid.cases
 GROUP BY 1, 2, 3;

ALTER TABLE {table} ADD CONSTRAINT {key} UNIQUE NULLS NOT DISTINCT (date, province_id, department_id);
