-- covid.age_bands: the age bands of the reporting tables, in years (babies' ages in months count as 0), and Unknown when the registry has no age.
-- min_age matches covid.case_breakdown.age_band_start (NULL: Unknown); sort_order orders them for charts and tables.
CREATE TABLE {table} AS
SELECT * FROM (VALUES ('0-19', 0, 19, 1), ('20-39', 20, 39, 2), ('40-59', 40, 59, 3), ('60-79', 60, 79, 4),
                      ('80+', 80, NULL, 5), ('Unknown', NULL, NULL, 6))
       AS bands(age_band, min_age, max_age, sort_order);
