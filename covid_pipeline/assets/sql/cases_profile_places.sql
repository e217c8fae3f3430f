-- {relation}'s rows per residence: province and department codes, and the department's name as written.
SELECT residence_province_id AS province_id, residence_department_id AS department_id,
       residence_department AS department_name, count(*) AS rows
  FROM {relation}
 GROUP BY 1, 2, 3
