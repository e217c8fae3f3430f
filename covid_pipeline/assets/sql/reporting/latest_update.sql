-- reporting.latest_update: how current the data is (one row); every "latest" date derives from the publication.
--   last_updated           the registry's own ultima_actualizacion (its publication date), as recorded in
--                          covid.loads by the load that produced covid.cases (written in the same transaction)
--   reference_date         the day every "last month", "last two months" and curve of this schema ends on: the
--                          publication date. Not max(fecha_apertura), which one mistyped date would move, and not
--                          today: the registry is historical (a file published on 2020-11-23 says nothing of today)
--   first_date             the earliest notification date (fecha_apertura) from 2020 on (SARS-CoV-2 was first
--                          reported on 2019-12-31: an earlier date is a typing error, which would stretch every
--                          curve over decades)
--   last_notification_date the latest notification date up to reference_date: where the data's notifications end.
--                          A whole registry is notified up to its publication; an extract (the bundled sample holds
--                          the cases notified on three days of June 2020) ends earlier, and says so here
--   last_month_start, last_two_months_start
--                          the first days of the windows (reference_date - 1 month, reference_date] and
--                          (reference_date - 2 months, reference_date], defined here once for every table using them
-- No load yet, or one that loaded no row: a row of NULLs.
CREATE TABLE {table} AS
WITH publication AS (
    SELECT (SELECT last_updated FROM covid.loads ORDER BY load_id DESC LIMIT 1) AS reference_date
), span AS (
    SELECT min(date) AS first_date, max(date) AS last_notification_date
      FROM covid.daily_aggregates, publication
     WHERE date BETWEEN '2020-01-01' AND publication.reference_date
)
SELECT publication.reference_date                               AS last_updated,
       publication.reference_date,
       span.first_date,
       span.last_notification_date,
       (publication.reference_date - interval '1 month')::date + 1  AS last_month_start,
       (publication.reference_date - interval '2 months')::date + 1 AS last_two_months_start
  FROM publication, span;
