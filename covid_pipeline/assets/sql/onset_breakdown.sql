-- covid.onset_breakdown: confirmed cases per notification day, symptom-onset day and province of residence (99 when unknown), in one scan of covid.cases per load.
-- onset_date is fecha_inicio_sintomas (NULL when not published); every delay is kept, plausible or not: the input of
-- the delay and onset-curve marts and of the check on implausible delays.
SET LOCAL work_mem = '64MB';
SET LOCAL parallel_tuple_cost = 0;
CREATE TABLE {table} AS
SELECT opened_date,
       symptom_onset_date                   AS onset_date,
       coalesce(residence_province_id, 99)  AS province_id,
       count(*)                             AS confirmed
  FROM covid.cases
 WHERE classification_summary = 'Confirmado'
 GROUP BY 1, 2, 3;
