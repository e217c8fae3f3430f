-- Rows of the current load that broke the format, as the load recorded them and as kept for inspection.
SELECT l.rows_read, l.rows_rejected, (SELECT count(*) FROM covid.rejected_cases) AS rejected_kept
  FROM covid.loads l
 ORDER BY l.load_id DESC
 LIMIT 1;
