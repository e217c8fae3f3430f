-- covid.cases as its load wrote it (cases_as_loaded.sql): the load built the primary key on case_id over exactly
-- these rows, so no id is null and none is repeated.
SELECT rows_loaded AS rows, 0::bigint AS null_ids, 0::bigint AS duplicated_ids
  FROM covid.loads
 WHERE load_id = %(load_id)s;
