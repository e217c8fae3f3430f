-- Warehouse migrations: idempotent, run before every asset touches the database.
CREATE SCHEMA IF NOT EXISTS covid;

-- One row per load of the case registry: provenance, and how re-running the same file is detected.
CREATE TABLE IF NOT EXISTS covid.loads (
    load_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           text,
    source_url       text,
    source_sha256    text        NOT NULL,
    source_bytes     bigint      NOT NULL,
    last_updated     date,                 -- the file's most common ultima_actualizacion: its publication date
    rows_read        bigint      NOT NULL,
    rows_loaded      bigint      NOT NULL,
    rows_rejected    bigint      NOT NULL,
    duplicate_rows   bigint      NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now()
);

-- The row drop the load's gate allowed (COVID_MAX_ROW_DROP): an accepted load is the next one's baseline.
ALTER TABLE covid.loads ADD COLUMN IF NOT EXISTS max_row_drop double precision;

-- The table the load wrote, as its file node (pg_relation_filenode: a rewrite such as TRUNCATE or ALTER TYPE gives
-- the table another), and when covid.cases was first changed after it (by the trigger below). While neither moved,
-- covid.cases holds exactly what the load counted in its profile (the covid.load_* tables), and the checks read that.
ALTER TABLE covid.loads ADD COLUMN IF NOT EXISTS cases_filenode oid;
ALTER TABLE covid.loads ADD COLUMN IF NOT EXISTS cases_changed_at timestamptz;

-- Every load puts this trigger on covid.cases (FOR EACH STATEMENT, ENABLE ALWAYS): any INSERT, UPDATE, DELETE,
-- TRUNCATE or COPY after the load marks the load, whoever runs it (SECURITY DEFINER: the mark needs no right on
-- covid.loads).
CREATE OR REPLACE FUNCTION covid.note_cases_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE covid.loads SET cases_changed_at = now()
     WHERE load_id = (SELECT max(load_id) FROM covid.loads) AND cases_changed_at IS NULL;
    RETURN NULL;
END
$$;

-- The profile of the load covid.cases came from: its rows counted while the file streamed (ingest/profile.py).
-- Only the current load's is kept.
CREATE TABLE IF NOT EXISTS covid.load_dates (
    load_id      bigint NOT NULL REFERENCES covid.loads ON DELETE CASCADE,
    column_name  text   NOT NULL,  -- the registry's date column (fecha_apertura, ...)
    day          date   NOT NULL,
    rows         bigint NOT NULL,
    PRIMARY KEY (load_id, column_name, day)
);
CREATE TABLE IF NOT EXISTS covid.load_values (
    load_id      bigint NOT NULL REFERENCES covid.loads ON DELETE CASCADE,
    column_name  text   NOT NULL,  -- sexo, origen_financiamiento, clasificacion_resumen
    value        text,             -- as loaded (case and spacing variants written as SISA writes them); NULL: empty
    rows         bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (load_id, column_name, value)
);
CREATE TABLE IF NOT EXISTS covid.load_places (
    load_id          bigint NOT NULL REFERENCES covid.loads ON DELETE CASCADE,
    province_id      integer,       -- residencia_provincia_id
    department_id    integer,       -- residencia_departamento_id
    department_name  text,          -- residencia_departamento_nombre as written
    rows             bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (load_id, province_id, department_id, department_name)
);
CREATE TABLE IF NOT EXISTS covid.load_outcomes (
    load_id                 bigint NOT NULL REFERENCES covid.loads ON DELETE CASCADE,
    classification_summary  text,     -- clasificacion_resumen
    deceased                boolean,  -- fallecido
    icu                     boolean,  -- cuidado_intensivo
    ventilated              boolean,  -- asistencia_respiratoria_mecanica
    rows                    bigint NOT NULL,
    UNIQUE NULLS NOT DISTINCT (load_id, classification_summary, deceased, icu, ventilated)
);

-- Rows of the current load that were not loaded, and why (replaced with every load).
CREATE TABLE IF NOT EXISTS covid.rejected_cases (
    line_number  bigint NOT NULL,   -- physical line in the source CSV (the header is line 1)
    column_name  text,              -- the column at fault, when there is one
    reason       text   NOT NULL,
    raw_line     text   NOT NULL
);

-- Reporting: views for analysts and dashboards (created by the reporting_views asset).
CREATE SCHEMA IF NOT EXISTS reporting;

-- metabase_reader: a group role that can read the reporting schema and nothing else. Views run with their
-- owner's privileges, so SELECT on reporting.* is enough: covid.* stays out of reach. The deployment creates
-- the login Metabase uses as a member (CREATE ROLE metabase LOGIN PASSWORD '...' IN ROLE metabase_reader),
-- with its password kept out of this file. Roles are cluster-wide: another database may create it first.
-- Without CREATEROLE (RDS's master user has it) the pipeline still runs: only Metabase's access is missing.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'metabase_reader') THEN
        BEGIN
            CREATE ROLE metabase_reader NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL;
            WHEN insufficient_privilege THEN
                RAISE WARNING 'cannot create role metabase_reader (needs CREATEROLE): Metabase cannot read reporting.*';
        END;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'metabase_reader') THEN
        GRANT USAGE ON SCHEMA reporting TO metabase_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO metabase_reader;
        ALTER DEFAULT PRIVILEGES IN SCHEMA reporting GRANT SELECT ON TABLES TO metabase_reader;
    END IF;
END
$$;
