-- covid.cases: one row per id_evento_caso of SISA's Covid19Casos.csv, every column typed.
-- Created fresh under a loading name, filled with COPY and swapped in (see assets/cases.py).
CREATE TABLE {table} (
    case_id                  bigint   NOT NULL,  -- id_evento_caso
    sex                      text,               -- sexo: F, M, NR
    age_years                integer,            -- edad, in whole years (edad_años_meses = 'Meses' means months)
    age_unit                 text,               -- edad_años_meses as published: Años, Meses
    residence_country        text,               -- residencia_pais_nombre
    residence_province       text,               -- residencia_provincia_nombre
    residence_department     text,               -- residencia_departamento_nombre
    reporting_province       text,               -- carga_provincia_nombre
    symptom_onset_date       date,               -- fecha_inicio_sintomas
    opened_date              date,               -- fecha_apertura
    epi_week                 integer,            -- sepi_apertura
    hospitalized_date        date,               -- fecha_internacion
    icu                      boolean,            -- cuidado_intensivo
    icu_date                 date,               -- fecha_cui_intensivo
    deceased                 boolean,            -- fallecido
    death_date               date,               -- fecha_fallecimiento
    ventilated               boolean,            -- asistencia_respiratoria_mecanica
    reporting_province_id    integer,            -- carga_provincia_id (INDEC code)
    funding                  text,               -- origen_financiamiento: Público, Privado
    classification           text,               -- clasificacion (labels changed over time)
    classification_summary   text,               -- clasificacion_resumen: Confirmado, Descartado, Sospechoso, ...
    residence_province_id    integer,            -- residencia_provincia_id (INDEC code, 99 = unknown)
    diagnosis_date           date,               -- fecha_diagnostico
    residence_department_id  integer,            -- residencia_departamento_id (unique within its province, 0 = unknown)
    last_updated             date,               -- ultima_actualizacion
    source_line              bigint   NOT NULL   -- physical line of the source CSV the row was read from
);
