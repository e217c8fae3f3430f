"""Reading, cleaning and loading the registry: plain Python, no Dagster, so it is easy to test and benchmark."""
