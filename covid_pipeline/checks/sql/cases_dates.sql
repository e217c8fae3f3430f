-- Dates before the start of the epidemic (the quality resource's earliest_date) or after the publication's
-- date, column by column, in one scan of covid.cases. The publication's date is its most common
-- ultima_actualizacion (as its load recorded it), never later than the day the file was loaded: a few
-- rows dated 2099 must not lift the bound and let future dates pass.
WITH latest_load AS (
    SELECT last_updated, started_at FROM covid.loads ORDER BY load_id DESC LIMIT 1
), bounds AS (
    SELECT %(earliest)s::date AS earliest,
           coalesce((SELECT least(last_updated, started_at::date) FROM latest_load), current_date) AS latest
)
SELECT min(bounds.earliest) AS earliest, min(bounds.latest) AS latest,
       count(symptom_onset_date)                                            AS fecha_inicio_sintomas_dated,
       count(*) FILTER (WHERE symptom_onset_date NOT BETWEEN bounds.earliest AND bounds.latest)
                                                                            AS fecha_inicio_sintomas_outside,
       count(opened_date)                                                   AS fecha_apertura_dated,
       count(*) FILTER (WHERE opened_date NOT BETWEEN bounds.earliest AND bounds.latest)
                                                                            AS fecha_apertura_outside,
       count(hospitalized_date)                                             AS fecha_internacion_dated,
       count(*) FILTER (WHERE hospitalized_date NOT BETWEEN bounds.earliest AND bounds.latest)
                                                                            AS fecha_internacion_outside,
       count(icu_date)                                                      AS fecha_cui_intensivo_dated,
       count(*) FILTER (WHERE icu_date NOT BETWEEN bounds.earliest AND bounds.latest)
                                                                            AS fecha_cui_intensivo_outside,
       count(death_date)                                                    AS fecha_fallecimiento_dated,
       count(*) FILTER (WHERE death_date NOT BETWEEN bounds.earliest AND bounds.latest)
                                                                            AS fecha_fallecimiento_outside,
       count(diagnosis_date)                                                AS fecha_diagnostico_dated,
       count(*) FILTER (WHERE diagnosis_date NOT BETWEEN bounds.earliest AND bounds.latest)
                                                                            AS fecha_diagnostico_outside,
       count(last_updated)                                                  AS ultima_actualizacion_dated,
       count(*) FILTER (WHERE last_updated NOT BETWEEN bounds.earliest AND bounds.latest)
                                                                            AS ultima_actualizacion_outside
  FROM covid.cases, bounds;
