"""The AWS deployment played on this machine, as close to AWS as it allows (`python -m deploy.rehearse`).

- `tls`: a certificate authority standing in for the RDS CA bundle, and the TLS the servers speak;
- `rds`: an RDS for PostgreSQL of the real shape (non-superuser master, TLS, streaming read replica);
- `fargate`: each ECS task and service moto's ECS is asked to run, started as a local process;
- `aws`: the AWS CLI for deploy.sh, started once; `cloudformation`: its `cloudformation deploy` for moto;
- `docker`: the three docker commands deploy.sh runs, where there is no Docker engine.
"""
