-- covid.cases counted per combination of the values the measures depend on (a few dozen rows): the check
-- derives each measure from these in Python, not with the FILTER clauses daily_aggregates.sql uses.
SELECT classification_summary, deceased, icu, ventilated, count(*) AS cases
  FROM covid.cases
 GROUP BY 1, 2, 3, 4;
