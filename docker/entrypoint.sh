#!/bin/sh
# Webserver and daemon set DAGSTER_INSTANCE_TEMPLATE: their dagster.yaml is rendered from the task's
# environment first (see deploy/dagster/dagster.yaml). Run tasks get their instance from the daemon.
set -eu
if [ -n "${DAGSTER_INSTANCE_TEMPLATE:-}" ]; then
    python /opt/dagster/deploy/render_instance.py "$DAGSTER_INSTANCE_TEMPLATE"
fi
exec "$@"
