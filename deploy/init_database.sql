-- Run by deploy/init_database.py in database `covid`, as the master user, after the logins exist.
-- Idempotent: every statement leaves the same state however often it runs.

-- The pipeline's login owns its two schemas (it creates, swaps and drops the tables in them).
CREATE SCHEMA IF NOT EXISTS covid AUTHORIZATION covid_pipeline;
CREATE SCHEMA IF NOT EXISTS reporting AUTHORIZATION covid_pipeline;
ALTER SCHEMA covid OWNER TO covid_pipeline;
ALTER SCHEMA reporting OWNER TO covid_pipeline;

-- Nobody creates anything in public (PostgreSQL 15+ already says so for new databases).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- The dashboards read the reporting relations (views, tables, materialized views), including
-- those the pipeline creates later, and nothing in covid.
GRANT USAGE ON SCHEMA reporting TO metabase_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO metabase_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE covid_pipeline IN SCHEMA reporting GRANT SELECT ON TABLES TO metabase_reader;
REVOKE ALL ON SCHEMA covid FROM metabase_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA covid FROM metabase_reader;
