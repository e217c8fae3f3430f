-- Residence codes that georef knows. 99 / 0 are SISA's "SIN ESPECIFICAR" and are counted apart.
-- A department is placed when covid.department_crosswalk (the code join plus the documented exceptions)
-- lands it on a covid.departments row; department_unmatched is what remains unplaced after the crosswalk.
SELECT count(*)                                                                          AS cases,
       count(*) FILTER (WHERE c.residence_province_id IS NULL OR c.residence_province_id = 99)
                                                                                         AS province_unspecified,
       count(*) FILTER (WHERE c.residence_province_id <> 99 AND p.province_id IS NULL)    AS province_unknown,
       count(*) FILTER (WHERE c.residence_department_id IS NULL OR c.residence_department_id = 0
                           OR c.residence_province_id = 99)                              AS department_unspecified,
       count(*) FILTER (WHERE c.residence_department_id <> 0 AND c.residence_province_id <> 99
                          AND d.department_id IS NULL)                                    AS department_unmatched,
       count(*) FILTER (WHERE d.department_id IS NOT NULL AND x.reason <> %(code_rule)s)  AS department_placed_by_exception
  FROM covid.cases c
  LEFT JOIN covid.provinces p ON p.province_id = c.residence_province_id
  LEFT JOIN covid.department_crosswalk x
         ON x.province_id = c.residence_province_id AND x.department_id = c.residence_department_id
  LEFT JOIN covid.departments d ON d.department_id = x.georef_department_id;
