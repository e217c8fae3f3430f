-- reporting.case_fatality_by_age_band: case fatality rate per age band over the whole registry, as a range: deaths / confirmed and deaths / (confirmed + suspected).
-- deaths are the deceased confirmed cases (fallecido = SI). case_fatality_rate_pct = deaths / confirmed is the crude
-- rate; case_fatality_rate_with_suspected_pct adds the suspected cases (clasificacion_resumen Sospechoso: never
-- confirmed nor ruled out, some of them COVID-19) to the denominator: the lower end of the range rOpenStats'
-- COVID19AR reports for this registry. Both understate the fatality of recent cases (those still ill count as
-- survivors). Bands as covid.age_bands, every one listed; a rate is NULL without cases to divide by.
CREATE TABLE {table} AS
WITH counts AS (
    SELECT breakdown.age_band_start,
           sum(breakdown.confirmed)                                                        AS confirmed,
           sum(breakdown.suspected)                                                        AS suspected,
           sum(breakdown.confirmed) FILTER (WHERE breakdown.death_province_id IS NOT NULL) AS deaths
      FROM covid.case_breakdown AS breakdown
     GROUP BY 1
)
SELECT bands.age_band,
       coalesce(counts.confirmed, 0)::bigint                                                       AS confirmed,
       coalesce(counts.suspected, 0)::bigint                                                       AS suspected,
       coalesce(counts.deaths, 0)::bigint                                                          AS deaths,
       round(100.0 * coalesce(counts.deaths, 0) / nullif(counts.confirmed, 0), 2)                  AS case_fatality_rate_pct,
       round(100.0 * coalesce(counts.deaths, 0) / nullif(counts.confirmed + counts.suspected, 0), 2)
                                                                                                   AS case_fatality_rate_with_suspected_pct,
       bands.sort_order
  FROM covid.age_bands AS bands
  LEFT JOIN counts ON counts.age_band_start IS NOT DISTINCT FROM bands.min_age;
