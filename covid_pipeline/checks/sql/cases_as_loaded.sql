-- The load whose counts (its profile: covid.load_dates, load_values, load_places, load_outcomes) still describe
-- covid.cases: the latest load, when covid.cases is still the file it wrote (no TRUNCATE, ALTER TYPE or other
-- rewrite since), nothing changed the table since (the trigger each load creates marks any INSERT, UPDATE,
-- DELETE, TRUNCATE or COPY), and that trigger is still there and always enabled. No row: count the table.
SELECT l.load_id
  FROM covid.loads AS l
 WHERE l.load_id = (SELECT max(load_id) FROM covid.loads)
   AND l.cases_changed_at IS NULL
   AND l.cases_filenode = pg_relation_filenode(to_regclass('covid.cases'))
   AND EXISTS (SELECT FROM pg_trigger
                WHERE tgrelid = to_regclass('covid.cases') AND tgname = 'changed_after_load' AND tgenabled = 'A');
