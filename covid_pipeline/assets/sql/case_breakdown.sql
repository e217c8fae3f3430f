-- covid.case_breakdown: what the marts need from covid.cases beyond covid.daily_aggregates, in one scan per load:
-- confirmed cases per notification day by sex (F, M, NR: anything else or empty is NR) and age band (whole
-- years; babies' ages in months count as 0), and for the deceased their date of death and province of
-- residence (99 when unknown). death_date and death_province_id are NULL for survivors, so the table stays
-- small: about days x 3 x 6 rows for the living, plus one row per group of deaths.
-- Every case is grouped and the confirmed ones counted (FILTER), rather than the others filtered out first: on
-- all the rows the planner lets each worker pre-aggregate its share of the scan, which takes a third less time.
SET LOCAL work_mem = '64MB';
SET LOCAL parallel_tuple_cost = 0;
CREATE TABLE {table} AS
WITH cases AS (
    SELECT *, classification_summary = 'Confirmado' AS confirmed FROM covid.cases
)
SELECT opened_date,
       CASE WHEN sex IN ('F', 'M') THEN sex ELSE 'NR' END                           AS sex_code,
       CASE WHEN age_years IS NULL THEN 'Unknown'
            WHEN age_years < 20 THEN '0-19'
            WHEN age_years < 40 THEN '20-39'
            WHEN age_years < 60 THEN '40-59'
            WHEN age_years < 80 THEN '60-79'
            ELSE '80+' END                                                           AS age_band,
       CASE WHEN confirmed AND deceased THEN death_date END                          AS death_date,
       CASE WHEN confirmed AND deceased THEN coalesce(residence_province_id, 99) END AS death_province_id,
       count(*) FILTER (WHERE confirmed)                                             AS confirmed
  FROM cases
 GROUP BY 1, 2, 3, 4, 5
HAVING count(*) FILTER (WHERE confirmed) > 0;
