-- reporting.last_month_by_sex: confirmed cases notified in the last month, by sex.
-- "Last month" is (reference_date - 1 month, reference_date], reference_date being the registry's publication
-- date (see latest_update), not today. sexo is published as F, M or NR (not recorded); an empty sexo
-- counts as NR (covid.case_breakdown). Every category is listed, with 0 when it has no case.
CREATE TABLE {table} AS
WITH period AS (
    SELECT last_month_start AS period_start, reference_date AS period_end FROM reporting.latest_update
), categories(sex_code, sex, sort_order) AS (
    VALUES ('F', 'Female', 1), ('M', 'Male', 2), ('NR', 'Not recorded', 3)
), counts AS (
    SELECT CASE WHEN breakdown.sex IN ('F', 'M') THEN breakdown.sex ELSE 'NR' END AS sex_code,
           sum(breakdown.confirmed)                                            AS confirmed
      FROM covid.case_breakdown AS breakdown, period
     WHERE breakdown.opened_date BETWEEN period.period_start AND period.period_end
     GROUP BY 1
)
SELECT period.period_start,
       period.period_end,
       categories.sex_code,
       categories.sex,
       coalesce(counts.confirmed, 0)::bigint                                                      AS confirmed,
       round(100.0 * coalesce(counts.confirmed, 0) / nullif(sum(counts.confirmed) OVER (), 0), 2) AS share_pct,
       categories.sort_order
  FROM categories
 CROSS JOIN period
  LEFT JOIN counts USING (sex_code);
