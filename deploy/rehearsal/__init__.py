"""The AWS deployment played on this machine, as close to AWS as it allows (`python -m deploy.rehearse`).

- `tls`: a certificate authority standing in for the RDS CA bundle, and the TLS the servers speak;
- `rds`: an RDS for PostgreSQL of the real shape (non-superuser master, TLS, streaming read replica);
"""
