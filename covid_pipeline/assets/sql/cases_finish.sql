-- Runs on the freshly copied table before it is swapped in: drop the earlier occurrences of
-- duplicated ids (the last line wins), then build the key and the indexes readers use.
DELETE FROM {table} AS earlier
 USING {table} AS later
 WHERE earlier.case_id = ANY(%(duplicate_ids)s)
   AND later.case_id = earlier.case_id
   AND later.source_line > earlier.source_line;

ALTER TABLE {table} ADD CONSTRAINT {pkey} PRIMARY KEY (case_id);
CREATE INDEX {opened_index} ON {table} (opened_date);
