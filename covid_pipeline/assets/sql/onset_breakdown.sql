-- covid.onset_breakdown: confirmed cases per notification day, symptom-onset day and province of residence (99 when unknown).
-- From case_groups, the one scan of covid.cases per load. onset_date is fecha_inicio_sintomas (NULL when not
-- published); every delay is kept, plausible or not: the input of the delay and onset-curve marts and of the check
-- on implausible delays.
CREATE TABLE {table} AS
SELECT opened_date, onset_date, province_id, confirmed
  FROM case_groups
 WHERE by_onset AND confirmed > 0;
