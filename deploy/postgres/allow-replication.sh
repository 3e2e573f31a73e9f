#!/bin/sh
# Runs once, when the primary's data directory is first created (the postgres image runs
# /docker-entrypoint-initdb.d/*.sh): lets the database login stream WAL to a read replica
# (docker-compose.yml, profile `read-replica`). The image's pg_hba.conf allows every
# database to password logins from the network, but "all" does not cover replication.
set -eu
echo "host replication ${POSTGRES_USER} all scram-sha-256" >> "$PGDATA/pg_hba.conf"
