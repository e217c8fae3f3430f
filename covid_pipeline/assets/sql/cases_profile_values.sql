-- {relation}'s rows per value of each categorical column (named as in the registry); NULL for an empty value.
SELECT v.column_name, v.value, count(*) AS rows
  FROM {relation} AS c, LATERAL (VALUES {pairs}) AS v(column_name, value)
 GROUP BY 1, 2
