-- The registry departments covid.department_crosswalk leaves unplaced because their rule in
-- data/department_crosswalk.yaml no longer matches the loaded georef release (the reason says why).
SELECT province_id, department_id, reason
  FROM covid.department_crosswalk
 WHERE georef_department_id IS NULL
 ORDER BY province_id, department_id;
