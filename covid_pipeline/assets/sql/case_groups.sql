-- case_groups: one scan of covid.cases for covid.case_breakdown and covid.onset_breakdown, grouped two ways in the
-- same pass (GROUPING SETS, both hashed), kept in a temporary table until the transaction ends. Two separate scans
-- cost a third more at 8M rows. by_onset tells the groupings apart: false for case_breakdown's (notification day,
-- sex, age band, death) over confirmed and suspected cases; true for onset_breakdown's (notification day, onset
-- day, province), in which only confirmed cases count.
-- Both hash tables must fit in work_mem for the single pass (a sort would take the place of one of them).
DROP TABLE IF EXISTS pg_temp.case_groups;
SET LOCAL work_mem = '256MB';
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL enable_sort = off;
SET LOCAL enable_incremental_sort = off;
CREATE TEMPORARY TABLE case_groups ON COMMIT DROP AS
SELECT opened_date,
       sex,
       CASE WHEN age_years >= 80 THEN 80 WHEN age_years >= 20 THEN age_years / 20 * 20
            WHEN age_years IS NOT NULL THEN 0 END                                         AS age_band_start,
       CASE WHEN deceased AND classification_summary = 'Confirmado' THEN death_date END    AS death_date,
       CASE WHEN deceased AND classification_summary = 'Confirmado'
            THEN coalesce(residence_province_id, 99) END                                   AS death_province_id,
       CASE WHEN classification_summary = 'Confirmado' THEN symptom_onset_date END         AS onset_date,
       CASE WHEN classification_summary = 'Confirmado'
            THEN coalesce(residence_province_id, 99) END                                   AS province_id,
       count(*) FILTER (WHERE classification_summary = 'Confirmado')                       AS confirmed,
       count(*) FILTER (WHERE classification_summary = 'Sospechoso')                       AS suspected,
       grouping(sex) = 1                                                                   AS by_onset
  FROM covid.cases
 WHERE classification_summary IN ('Confirmado', 'Sospechoso')
 GROUP BY GROUPING SETS ((1, 2, 3, 4, 5), (1, 6, 7));
SET LOCAL work_mem = '64MB';
SET LOCAL enable_sort = on;
SET LOCAL enable_incremental_sort = on;
