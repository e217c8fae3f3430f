-- covid.province_population: resident population per province, 2022 census, final results (INDEC), filled from covid_pipeline/data/province_population.yaml (its source is named there).
CREATE TABLE {table} (
    province_id integer PRIMARY KEY,  -- INDEC's province code (residencia_provincia_id, georef's provincia id)
    province    text    NOT NULL,     -- the census's name of the province
    population  bigint  NOT NULL CHECK (population > 0)
);
