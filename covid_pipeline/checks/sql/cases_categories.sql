-- Values of the categorical columns outside the set SISA writes, after the load wrote case and spacing
-- variants (`confirmado `) as SISA does: such rows are kept in covid.cases, and counted here by value.
SELECT column_name, value, count(*) AS cases, sum(count(*)) OVER () AS all_unknown
  FROM covid.cases,
       LATERAL (VALUES ('sexo', sex, %(sexo)s::text[]),
                       ('origen_financiamiento', funding, %(origen_financiamiento)s::text[]),
                       ('clasificacion_resumen', classification_summary, %(clasificacion_resumen)s::text[]))
           AS categorical(column_name, value, known)
 WHERE value IS NOT NULL AND value <> ALL(known)
 GROUP BY column_name, value
 ORDER BY cases DESC, column_name, value
 LIMIT 20;
