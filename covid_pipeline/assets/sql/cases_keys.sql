-- Built after COPY (one sort instead of index maintenance per row): the key and the date index readers use.
ALTER TABLE {table} ADD CONSTRAINT {pkey} PRIMARY KEY (case_id);
CREATE INDEX {opened_index} ON {table} (opened_date);
