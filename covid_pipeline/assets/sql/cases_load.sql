-- The counts of the load covid.cases came from (for the metadata of a run that found the file unchanged).
SELECT rows_read, rows_loaded, rows_rejected, duplicate_rows, last_updated
FROM covid.loads
WHERE load_id = %(load_id)s
