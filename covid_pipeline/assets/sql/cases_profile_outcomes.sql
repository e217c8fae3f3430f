-- {relation}'s rows per clasificacion_resumen and the fallecido / cuidado_intensivo / asistencia_respiratoria_mecanica flags.
SELECT classification_summary, deceased, icu, ventilated, count(*) AS rows
  FROM {relation}
 GROUP BY 1, 2, 3, 4
