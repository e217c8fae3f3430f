-- The department codes that remain unplaced after covid.department_crosswalk, most frequent first (for the
-- check's metadata: each one is a candidate for data/department_crosswalk.yaml).
SELECT c.residence_province_id AS province_id, c.residence_department_id AS department_id,
       min(c.residence_department) AS name, count(*) AS cases
  FROM covid.cases c
  LEFT JOIN covid.department_crosswalk x
         ON x.province_id = c.residence_province_id AND x.department_id = c.residence_department_id
  LEFT JOIN covid.departments d ON d.department_id = x.georef_department_id
 WHERE d.department_id IS NULL AND c.residence_department_id <> 0 AND c.residence_province_id <> 99
 GROUP BY 1, 2
 ORDER BY cases DESC, 1, 2
 LIMIT 10;
