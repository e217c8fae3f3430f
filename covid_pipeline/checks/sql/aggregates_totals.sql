-- covid.daily_aggregates summed over days and places.
SELECT coalesce(sum(notified), 0) AS notified, coalesce(sum(confirmed), 0) AS confirmed,
       coalesce(sum(deaths), 0) AS deaths, coalesce(sum(icu), 0) AS icu,
       coalesce(sum(ventilated), 0) AS ventilated
  FROM covid.daily_aggregates;
