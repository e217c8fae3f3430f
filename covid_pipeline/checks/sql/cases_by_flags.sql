-- covid.cases counted per combination of the values the measures depend on (a few dozen rows): the check
-- derives each measure from these in Python, not with the FILTER clauses daily_aggregates.sql uses.
-- outcomes: the counts of covid.cases' load, or the table counted now (checks/query.py).
SELECT classification_summary, deceased, icu, ventilated, sum(rows)::bigint AS cases
  FROM ({outcomes}) AS outcomes
 GROUP BY 1, 2, 3, 4;
