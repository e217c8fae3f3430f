-- The department codes that remain unplaced after covid.department_crosswalk, most frequent first (for the
-- check's metadata: each one is a candidate for data/department_crosswalk.yaml).
-- places: covid.cases' rows per place, as its load counted them or counted now (checks/query.py).
SELECT c.province_id, c.department_id, min(c.department_name) AS name, sum(c.rows)::bigint AS cases
  FROM ({places}) AS c
  LEFT JOIN covid.department_crosswalk x ON x.province_id = c.province_id AND x.department_id = c.department_id
  LEFT JOIN covid.departments d ON d.department_id = x.georef_department_id
 WHERE d.department_id IS NULL AND c.department_id <> 0 AND c.province_id <> 99
 GROUP BY 1, 2
 ORDER BY cases DESC, 1, 2
 LIMIT 10;
