-- covid.department_crosswalk: where each registry residence department lands in georef (assets/crosswalk.py).
-- Built from covid.departments by the code join plus the exceptions of data/department_crosswalk.yaml;
-- a (province, department) pair without a row is unplaced, and so is a row without a georef id: an exception
-- of the mapping file that no longer matches the loaded georef release (its reason says why). No foreign key:
-- covid.departments is swapped in on its own, and this table is rebuilt right after it. The migrations create it empty (IF NOT EXISTS), so the
-- aggregates and the georef check can read it before its asset ever ran: then nothing is placed, and they say so.
CREATE TABLE IF NOT EXISTS {table} (
    province_id           integer NOT NULL,  -- residencia_provincia_id
    department_id         integer NOT NULL,  -- residencia_departamento_id (3 digits within the province)
    georef_department_id  integer,           -- covid.departments.department_id; NULL: unplaced (see reason)
    reason                text    NOT NULL,  -- which rule placed it, or why it is unplaced
    PRIMARY KEY (province_id, department_id)
);
