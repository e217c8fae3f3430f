-- Rows now in covid.cases against the load that wrote them and the load before it, with the row drop
-- that load's gate allowed (NULL for loads recorded before it was kept).
WITH recent AS (
    SELECT load_id, rows_loaded, source_sha256, max_row_drop, row_number() OVER (ORDER BY load_id DESC) AS age
      FROM covid.loads
)
SELECT (SELECT count(*) FROM covid.cases)                 AS rows,
       (SELECT load_id FROM recent WHERE age = 1)         AS load_id,
       (SELECT rows_loaded FROM recent WHERE age = 1)     AS rows_loaded,
       (SELECT rows_loaded FROM recent WHERE age = 2)     AS previous_rows,
       (SELECT max_row_drop FROM recent WHERE age = 1)    AS accepted_max_row_drop;
