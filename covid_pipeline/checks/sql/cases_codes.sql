-- Residence codes that georef knows. 99 / 0 are SISA's "SIN ESPECIFICAR" and are counted apart.
-- A department is placed when covid.department_crosswalk (the code join plus the documented exceptions)
-- lands it on a covid.departments row; department_unmatched is what remains unplaced after the crosswalk.
-- places: covid.cases' rows per place, as its load counted them or counted now (checks/query.py).
SELECT coalesce(sum(c.rows), 0)::bigint                                                     AS cases,
       coalesce(sum(c.rows) FILTER (WHERE c.province_id IS NULL OR c.province_id = 99), 0)::bigint
                                                                                            AS province_unspecified,
       coalesce(sum(c.rows) FILTER (WHERE c.province_id <> 99 AND p.province_id IS NULL), 0)::bigint
                                                                                            AS province_unknown,
       coalesce(sum(c.rows) FILTER (WHERE c.department_id IS NULL OR c.department_id = 0
                                       OR c.province_id = 99), 0)::bigint                   AS department_unspecified,
       coalesce(sum(c.rows) FILTER (WHERE c.department_id <> 0 AND c.province_id <> 99
                                      AND d.department_id IS NULL), 0)::bigint              AS department_unmatched,
       coalesce(sum(c.rows) FILTER (WHERE d.department_id IS NOT NULL AND x.reason <> %(code_rule)s), 0)::bigint
                                                                                            AS department_placed_by_exception
  FROM ({places}) AS c
  LEFT JOIN covid.provinces p ON p.province_id = c.province_id
  LEFT JOIN covid.department_crosswalk x ON x.province_id = c.province_id AND x.department_id = c.department_id
  LEFT JOIN covid.departments d ON d.department_id = x.georef_department_id;
