-- Residence codes that georef knows. 99 / 0 are SISA's "SIN ESPECIFICAR" and are counted apart.
-- Departments join as province * 1000 + department; CABA's comunas, Tierra del Fuego and some
-- renamed departments never match, which is why this is reported, not enforced.
SELECT count(*)                                                                          AS cases,
       count(*) FILTER (WHERE c.residence_province_id IS NULL OR c.residence_province_id = 99)
                                                                                         AS province_unspecified,
       count(*) FILTER (WHERE c.residence_province_id <> 99 AND p.province_id IS NULL)    AS province_unknown,
       count(*) FILTER (WHERE c.residence_department_id IS NULL OR c.residence_department_id = 0
                           OR c.residence_province_id = 99)                              AS department_unspecified,
       count(*) FILTER (WHERE c.residence_department_id <> 0 AND c.residence_province_id <> 99
                          AND d.department_id IS NULL)                                    AS department_unmatched
  FROM covid.cases c
  LEFT JOIN covid.provinces p ON p.province_id = c.residence_province_id
  LEFT JOIN covid.departments d ON d.department_id = c.residence_province_id * 1000 + c.residence_department_id;
