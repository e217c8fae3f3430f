-- Duplicated ids keep their last occurrence in the file: drop the earlier lines.
-- Run only when the load saw duplicates (it scans the freshly copied table).
DELETE FROM {table} AS earlier
 USING {table} AS later
 WHERE earlier.case_id = ANY(%(duplicate_ids)s)
   AND later.case_id = earlier.case_id
   AND later.source_line > earlier.source_line;
