-- covid.cases: every row has a case id and no id appears twice.
SELECT count(*)                                   AS rows,
       count(*) - count(case_id)                  AS null_ids,
       count(case_id) - count(DISTINCT case_id)   AS duplicated_ids
  FROM covid.cases;
