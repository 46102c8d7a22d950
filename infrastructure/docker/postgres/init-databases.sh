#!/usr/bin/env bash
# Runs once, when the compose Postgres volume is empty: one database per data service, owned by
# the compose user. (The services would also create a missing database at start-up; doing it
# here keeps ownership and the list in one visible place.)
set -euo pipefail

databases=(cloudretail_users cloudretail_products cloudretail_orders cloudretail_inventory cloudretail_payments cloudretail_events)

for db in "${databases[@]}"; do
  echo "init-databases: creating ${db}"
  psql -v ON_ERROR_STOP=1 --username "${POSTGRES_USER}" --dbname postgres \
    -c "CREATE DATABASE \"${db}\" OWNER \"${POSTGRES_USER}\""
done
