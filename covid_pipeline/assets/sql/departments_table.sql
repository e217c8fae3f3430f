-- covid.departments: georef departamentos.csv (datos.gob.ar, modernizacion/7.8).
-- department_id = province code * 1000 + department code; SISA's codes do not always match
-- (CABA's comunas, Tierra del Fuego, renamed departments): no foreign key from covid.cases.
CREATE TABLE {table} (
    department_id          integer PRIMARY KEY,  -- id: 5-digit code ("06427" -> 6427)
    province_id            integer NOT NULL,     -- provincia_id
    department_code        integer NOT NULL,     -- the last 3 digits, as cases' residence_department_id
    name                   text NOT NULL,        -- nombre
    full_name              text,                 -- nombre_completo
    category               text,                 -- categoria
    province_name          text,                 -- provincia_nombre
    centroid_lat           double precision,     -- centroide_lat
    centroid_lon           double precision,     -- centroide_lon
    province_intersection  double precision,     -- provincia_interseccion
    source                 text                  -- fuente
);
