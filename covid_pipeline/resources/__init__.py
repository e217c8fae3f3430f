"""Resources: the warehouse, the object stores and the published sources, configured from env vars."""
