-- reporting.positivity_by_province_week: test positivity per province of residence and week (Monday to Sunday) of notification.
-- confirmed and discarded count the cases whose clasificacion_resumen is Confirmado or Descartado (a suspected case,
-- still without a result, is in neither); positivity = confirmed / (confirmed + discarded), NULL when both are 0.
-- week_start is the Monday of the week of fecha_apertura. Every week from the first notification's to the
-- publication's (see latest_update) is listed for every province with any confirmed or discarded case, with 0 when
-- it had none; notifications dated outside that span are typing errors, left out. Recent weeks lean on the cases
-- already classified: those still suspected at the publication are in neither count. An empty province is 99,
-- SIN ESPECIFICAR: "Unknown". The country as a whole: positivity_by_week.
CREATE TABLE {table} AS
WITH span AS (
    SELECT first_date, reference_date FROM reporting.latest_update
), weekly AS (
    SELECT date_trunc('week', aggregates.date)::date      AS week_start,
           coalesce(aggregates.province_id, 99)            AS province_id,
           sum(aggregates.confirmed)                       AS confirmed,
           sum(aggregates.discarded)                       AS discarded
      FROM covid.daily_aggregates AS aggregates, span
     WHERE aggregates.date BETWEEN span.first_date AND span.reference_date
     GROUP BY 1, 2
), places AS (
    SELECT province_id FROM weekly GROUP BY 1 HAVING sum(confirmed + discarded) > 0
), weeks AS (
    SELECT generate_series(date_trunc('week', first_date), reference_date, interval '1 week')::date AS week_start
      FROM span
)
SELECT places.province_id,
       coalesce(provinces.name, 'Unknown')                                                      AS province,
       weeks.week_start,
       coalesce(weekly.confirmed, 0)::bigint                                                    AS confirmed,
       coalesce(weekly.discarded, 0)::bigint                                                    AS discarded,
       round(weekly.confirmed / nullif(weekly.confirmed + weekly.discarded, 0), 4)              AS positivity
  FROM weeks
 CROSS JOIN places
  LEFT JOIN weekly USING (week_start, province_id)
  LEFT JOIN covid.provinces USING (province_id);
