-- covid.case_breakdown: confirmed and suspected cases per notification day by sex and age, and deaths by date of death and province.
-- What the marts need from covid.cases beyond covid.daily_aggregates (from case_groups, the one scan per load):
-- confirmed and suspected cases per notification day by sex (as published) and age band (age_band_start: 0, 20,
-- 40, 60, 80 for 80 and over, NULL when the age is not published; ages are whole years, babies' months count as
-- 0), and for the deceased confirmed cases their date of death and province of residence (99 when unknown).
-- death_date and death_province_id are NULL for everyone else, so the table stays small: days x sexes x 6 bands
-- for the living, plus the groups of deaths. Suspected cases (Sospechoso: never confirmed nor ruled out) are only
-- counted, for the lower bound of the case fatality rate (case_fatality_by_age_band).
-- Grouped on the columns and on integer arithmetic (least/greatest would turn a NULL age into a band): text labels
-- computed for every case took three times as long at 8M rows; the marts label this table's few rows instead.
CREATE TABLE {table} AS
SELECT opened_date, sex, age_band_start, death_date, death_province_id, confirmed, suspected
  FROM case_groups
 WHERE NOT by_onset;
