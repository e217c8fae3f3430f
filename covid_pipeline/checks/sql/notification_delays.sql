-- Confirmed cases by what their dates say of the delay from symptom onset to notification (covid.onset_breakdown):
-- plausible (onset 0 to 30 days before notification, the cases of reporting.notification_delay), onset after the
-- notification, onset more than 30 days before it, no onset date, and notified outside the registry's span (no
-- notification date, or one before the first notification or after the publication: see reporting.latest_update).
SELECT coalesce(sum(confirmed) FILTER (WHERE in_span AND delay BETWEEN 0 AND 30), 0) AS plausible,
       coalesce(sum(confirmed) FILTER (WHERE in_span AND delay < 0), 0)            AS onset_after_notification,
       coalesce(sum(confirmed) FILTER (WHERE in_span AND delay > 30), 0)           AS over_30_days,
       coalesce(sum(confirmed) FILTER (WHERE in_span AND delay IS NULL), 0)        AS no_onset_date,
       coalesce(sum(confirmed) FILTER (WHERE NOT in_span), 0)                      AS not_in_span
  FROM (SELECT breakdown.confirmed,
               breakdown.opened_date - breakdown.onset_date                                    AS delay,
               coalesce(breakdown.opened_date BETWEEN span.first_date AND span.reference_date, false) AS in_span
          FROM covid.onset_breakdown AS breakdown, reporting.latest_update AS span) AS cases;
