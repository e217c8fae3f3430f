-- covid.case_breakdown: what the marts need from covid.cases beyond covid.daily_aggregates, in one scan per load:
-- confirmed cases per notification day by sex and age (as published: the marts band them), and for the deceased
-- their date of death and province of residence (99 when unknown). death_date and death_province_id are NULL for
-- survivors, so the table stays small: about days x sexes x ages rows for the living, plus the groups of deaths.
-- Grouped on the columns themselves: labels and bands computed here, for every case, took three times as long
-- at 8M rows; the marts compute them on this table's few rows instead.
SET LOCAL work_mem = '64MB';
SET LOCAL parallel_tuple_cost = 0;
CREATE TABLE {table} AS
SELECT opened_date,
       sex,
       age_years,
       CASE WHEN deceased THEN death_date END                                    AS death_date,
       CASE WHEN deceased THEN coalesce(residence_province_id, 99) END           AS death_province_id,
       count(*)                                                                  AS confirmed
  FROM covid.cases
 WHERE classification_summary = 'Confirmado'
 GROUP BY 1, 2, 3, 4, 5;
