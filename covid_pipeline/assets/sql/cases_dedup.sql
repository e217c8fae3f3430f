-- Duplicated ids keep their last occurrence in the file: the earlier lines are moved out into {dropped} (the
-- load then counts them out of its profile). Run only when the load saw duplicates. One scan finds the few rows
-- of those ids (the array is cast to bigint[] so PostgreSQL hashes it: compared as integer[] to bigint it scans
-- the array per row), and they are deleted by their physical address.
WITH moved AS (
    DELETE FROM {table}
     WHERE ctid = ANY(ARRAY(
           SELECT ctid
             FROM (SELECT ctid, row_number() OVER (PARTITION BY case_id ORDER BY source_line DESC) AS occurrence
                     FROM {table}
                    WHERE case_id = ANY(%(duplicate_ids)s::bigint[])) AS repeated
            WHERE occurrence > 1))
    RETURNING *
)
INSERT INTO {dropped} SELECT * FROM moved;
