-- reporting.notification_delay: confirmed cases per number of days from symptom onset to notification, per province of residence and month of notification.
-- delay_days = fecha_apertura - fecha_inicio_sintomas, over the confirmed cases whose onset lies 0 to 30 days before
-- their notification; month is the first day of the month of fecha_apertura (notifications from the first one to
-- the publication, see latest_update). Any other delay is implausible (a typing error, or an onset recorded after
-- the notification) and left out, as are cases without an onset date: the check plausible_notification_delays
-- counts them. Only the combinations with cases are listed; province_id 99: not recorded. Median and 90th
-- percentile per province and month: notification_delay_summary.
CREATE TABLE {table} AS
SELECT breakdown.province_id,
       date_trunc('month', breakdown.opened_date)::date   AS month,
       breakdown.opened_date - breakdown.onset_date        AS delay_days,
       sum(breakdown.confirmed)::bigint                    AS cases
  FROM covid.onset_breakdown AS breakdown, reporting.latest_update AS span
 WHERE breakdown.opened_date - breakdown.onset_date BETWEEN 0 AND 30
   AND breakdown.opened_date BETWEEN span.first_date AND span.reference_date
 GROUP BY 1, 2, 3;
