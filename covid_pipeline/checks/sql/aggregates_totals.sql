-- covid.daily_aggregates summed, and the same counts taken straight from covid.cases.
SELECT a.notified, a.confirmed, a.deaths, a.icu, a.ventilated,
       c.notified AS cases_notified, c.confirmed AS cases_confirmed, c.deaths AS cases_deaths,
       c.icu AS cases_icu, c.ventilated AS cases_ventilated
  FROM (SELECT coalesce(sum(notified), 0) AS notified, coalesce(sum(confirmed), 0) AS confirmed,
               coalesce(sum(deaths), 0) AS deaths, coalesce(sum(icu), 0) AS icu,
               coalesce(sum(ventilated), 0) AS ventilated
          FROM covid.daily_aggregates) a,
       (SELECT count(*) AS notified,
               count(*) FILTER (WHERE classification_summary = 'Confirmado') AS confirmed,
               count(*) FILTER (WHERE classification_summary = 'Confirmado' AND deceased) AS deaths,
               count(*) FILTER (WHERE classification_summary = 'Confirmado' AND icu) AS icu,
               count(*) FILTER (WHERE classification_summary = 'Confirmado' AND ventilated) AS ventilated
          FROM covid.cases) c;
