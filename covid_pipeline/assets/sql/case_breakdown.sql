-- covid.case_breakdown: confirmed and suspected cases per notification day by sex and age, and deaths by date of death and province.
-- What the marts need from covid.cases beyond covid.daily_aggregates, in one scan per load: confirmed and suspected cases per notification day by sex (as published) and age band (age_band_start: 0, 20, 40,
-- 60, 80 for 80 and over, NULL when the age is not published; ages are whole years, babies' months count as 0), and
-- for the deceased confirmed cases their date of death and province of residence (99 when unknown). death_date and
-- death_province_id are NULL for everyone else, so the table stays small: days x sexes x 6 bands for the living,
-- plus the groups of deaths. Suspected cases (Sospechoso: never confirmed nor ruled out) are only counted, for the
-- lower bound of the case fatality rate (case_fatality_by_age_band).
-- Grouped on the columns and on integer arithmetic (least/greatest would turn a NULL age into a band): text labels computed here for every case took three times
-- as long at 8M rows; the marts label this table's few rows instead.
SET LOCAL work_mem = '64MB';
SET LOCAL parallel_tuple_cost = 0;
CREATE TABLE {table} AS
SELECT opened_date,
       sex,
       CASE WHEN age_years >= 80 THEN 80 WHEN age_years >= 20 THEN age_years / 20 * 20
            WHEN age_years IS NOT NULL THEN 0 END                                AS age_band_start,  -- NULL: unknown
       CASE WHEN deceased AND classification_summary = 'Confirmado' THEN death_date END                 AS death_date,
       CASE WHEN deceased AND classification_summary = 'Confirmado'
            THEN coalesce(residence_province_id, 99) END                                                AS death_province_id,
       count(*) FILTER (WHERE classification_summary = 'Confirmado')             AS confirmed,
       count(*) FILTER (WHERE classification_summary = 'Sospechoso')             AS suspected
  FROM covid.cases
 WHERE classification_summary IN ('Confirmado', 'Sospechoso')
 GROUP BY 1, 2, 3, 4, 5;
