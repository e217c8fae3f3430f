-- Warehouse migrations: idempotent, run before every asset touches the database.
CREATE SCHEMA IF NOT EXISTS covid;

-- One row per load of the case registry: provenance, and how re-running the same file is detected.
CREATE TABLE IF NOT EXISTS covid.loads (
    load_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id           text,
    source_url       text,
    source_sha256    text        NOT NULL,
    source_bytes     bigint      NOT NULL,
    last_updated     date,                 -- max(ultima_actualizacion) of the file
    rows_read        bigint      NOT NULL,
    rows_loaded      bigint      NOT NULL,
    rows_rejected    bigint      NOT NULL,
    duplicate_rows   bigint      NOT NULL,
    started_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL DEFAULT now()
);

-- Rows of the current load that were not loaded, and why (replaced with every load).
CREATE TABLE IF NOT EXISTS covid.rejected_cases (
    line_number  bigint NOT NULL,   -- physical line in the source CSV (the header is line 1)
    column_name  text,              -- the column at fault, when there is one
    reason       text   NOT NULL,
    raw_line     text   NOT NULL
);
