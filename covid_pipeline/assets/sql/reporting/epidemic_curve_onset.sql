-- reporting.epidemic_curve_onset: confirmed cases per day of symptom onset in the whole country, with the nowcast of the days still being notified.
-- The country's rows of epidemic_curve_onset_by_province (province_id NULL): the cases counted, what makes a day
-- complete, and how nowcast, nowcast_low and nowcast_high are estimated are described there.
CREATE TABLE {table} AS
SELECT date, confirmed, complete, nowcast, nowcast_low, nowcast_high
  FROM reporting.epidemic_curve_onset_by_province
 WHERE province_id IS NULL;
