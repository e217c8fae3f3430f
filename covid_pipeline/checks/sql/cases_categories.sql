-- Values of the categorical columns outside the set SISA writes, after the load wrote case and spacing
-- variants (`confirmado `) as SISA does: such rows are kept in covid.cases, and counted here by value.
-- values: the counts of covid.cases' load, or the table counted now (checks/query.py).
SELECT v.column_name, v.value, sum(v.rows)::bigint AS cases, (sum(sum(v.rows)) OVER ())::bigint AS all_unknown
  FROM ({values}) AS v
  JOIN (VALUES ('sexo', %(sexo)s::text[]),
               ('origen_financiamiento', %(origen_financiamiento)s::text[]),
               ('clasificacion_resumen', %(clasificacion_resumen)s::text[])) AS categorical(column_name, known)
    ON categorical.column_name = v.column_name
 WHERE v.value IS NOT NULL AND v.value <> ALL(categorical.known)
 GROUP BY v.column_name, v.value
 ORDER BY cases DESC, v.column_name, v.value
 LIMIT 20;
