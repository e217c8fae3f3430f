-- reporting.epidemic_curve_onset_by_province: confirmed cases per day of symptom onset, per province of residence and for the country, with a nowcast of the days still being notified.
-- Cases: the confirmed cases whose onset lies 0 to 30 days before their notification (as notification_delay). Every
-- day from the first such onset to the publication (latest_update.reference_date) is listed for every province with
-- such cases, and for the country (province_id NULL, province 'Argentina'), with 0 when none.
-- complete: at least 95% of the day's cases are expected to be notified by the publication. That share, p, is the
-- share of cases notified within (publication - day) days of their onset in the delay distribution: the plausible
-- delays of the cases whose onset lies in the 8 weeks before the last 30 days (days whose cases are all notified
-- by the publication, delays being at most 30 days), the province's own when it has 100 such cases or more, else
-- the country's. A day 30 days or more before the publication is complete; so is any day when p >= 0.95.
-- nowcast: the count expected once every case is notified, confirmed / p, with a 95% interval
-- [nowcast_low, nowcast_high]: nowcast +- 1.96 standard deviations, the variance adding the cases yet to be
-- notified ((confirmed + 1)(1 - p) / p^2, binomial) and the uncertainty of p estimated from n cases
-- (confirmed^2 (1 - p) / (n p^3), delta method); nowcast_low is never below confirmed. Complete days have
-- nowcast = nowcast_low = nowcast_high = confirmed. Without any case to estimate p from, an incomplete day has no
-- nowcast (NULL). The country's nowcast uses the country's distribution: it is not the sum of the provinces'.
CREATE TABLE {table} AS
WITH span AS (
    SELECT first_date, reference_date FROM reporting.latest_update
), plausible AS (  -- per onset day, delay and place: a province, or 0 for the country
    SELECT onset_date, delay_days, coalesce(province_id, 0) AS place, cases
      FROM (SELECT breakdown.onset_date, breakdown.opened_date - breakdown.onset_date AS delay_days,
                   breakdown.province_id, sum(breakdown.confirmed) AS cases
              FROM covid.onset_breakdown AS breakdown, span
             WHERE breakdown.opened_date - breakdown.onset_date BETWEEN 0 AND 30
               AND breakdown.opened_date BETWEEN span.first_date AND span.reference_date
             GROUP BY GROUPING SETS ((1, 2, 3), (1, 2))) AS grouped
), recent AS (  -- the delay distributions' cases: onset in the 8 weeks before the last 30 days
    SELECT plausible.place, plausible.delay_days, sum(plausible.cases) AS cases
      FROM plausible, span
     WHERE plausible.onset_date BETWEEN span.reference_date - 85 AND span.reference_date - 30
     GROUP BY 1, 2
), sizes AS (
    SELECT place, sum(cases) AS n FROM recent GROUP BY 1
), sources AS (  -- whose distribution each place uses: its own with 100 cases or more, else the country's
    SELECT places.place, CASE WHEN sizes.n >= 100 THEN places.place ELSE 0 END AS source
      FROM (SELECT DISTINCT place FROM plausible) AS places
      LEFT JOIN sizes USING (place)
), shares AS (  -- p for a day `lag` days before the publication: the share notified within `lag` days of onset
    SELECT sources.place, lags.lag, sizes.n,
           coalesce(sum(recent.cases) FILTER (WHERE recent.delay_days <= lags.lag), 0)::numeric / sizes.n AS p
      FROM sources
      JOIN sizes ON sizes.place = sources.source
      JOIN recent ON recent.place = sources.source
     CROSS JOIN generate_series(0, 29) AS lags(lag)
     GROUP BY 1, 2, 3
), counts AS (
    SELECT onset_date AS date, place, sum(cases) AS confirmed FROM plausible GROUP BY 1, 2
), days AS (
    SELECT generate_series((SELECT min(onset_date) FROM plausible), reference_date, interval '1 day')::date AS date
      FROM span
), estimated AS (
    SELECT days.date, sources.place, coalesce(counts.confirmed, 0) AS confirmed, shares.n,
           CASE WHEN span.reference_date - days.date >= 30 THEN 1 ELSE shares.p END AS p
      FROM days
     CROSS JOIN sources
     CROSS JOIN span
      LEFT JOIN counts ON counts.date = days.date AND counts.place = sources.place
      LEFT JOIN shares ON shares.place = sources.place AND shares.lag = span.reference_date - days.date
), nowcast AS (
    SELECT date, place, confirmed, coalesce(p >= 0.95, false) AS complete,
           CASE WHEN p >= 0.95 THEN confirmed WHEN p > 0 THEN confirmed / p END AS nowcast,
           CASE WHEN p < 0.95 AND p > 0
                THEN 1.96 * sqrt((confirmed + 1) * (1 - p) / (p * p) + confirmed * confirmed * (1 - p) / (n * p * p * p))
                ELSE 0 END AS margin
      FROM estimated
)
SELECT nowcast.date,
       nullif(nowcast.place, 0)                                                        AS province_id,
       CASE WHEN nowcast.place = 0 THEN 'Argentina' ELSE coalesce(provinces.name, 'Unknown') END AS province,
       nowcast.confirmed::bigint                                                      AS confirmed,
       nowcast.complete,
       round(nowcast.nowcast, 1)                                                      AS nowcast,
       round(greatest(nowcast.confirmed, nowcast.nowcast - nowcast.margin), 1)        AS nowcast_low,
       round(nowcast.nowcast + nowcast.margin, 1)                                     AS nowcast_high
  FROM nowcast
  LEFT JOIN covid.provinces ON provinces.province_id = nowcast.place;
