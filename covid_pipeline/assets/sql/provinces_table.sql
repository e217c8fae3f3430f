-- covid.provinces: georef provincias.csv (datos.gob.ar, modernizacion/7.7).
CREATE TABLE {table} (
    province_id   integer PRIMARY KEY,   -- id: 2-digit INDEC code ("06" -> 6), as cases' residence_province_id
    name          text NOT NULL,         -- nombre
    full_name     text,                  -- nombre_completo
    category      text,                  -- categoria
    iso_id        text,                  -- iso_id, e.g. AR-B
    iso_name      text,                  -- iso_nombre
    centroid_lat  double precision,      -- centroide_lat
    centroid_lon  double precision,      -- centroide_lon
    source        text                   -- fuente
);
