-- {relation}'s rows per date column (named as in the registry) and day; empty dates are not counted.
SELECT d.column_name, d.day, count(*) AS rows
  FROM {relation} AS c, LATERAL (VALUES {pairs}) AS d(column_name, day)
 WHERE d.day IS NOT NULL
 GROUP BY 1, 2
