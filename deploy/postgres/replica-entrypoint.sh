#!/bin/sh
# A streaming read replica of the compose `db` service (profile `read-replica`). On its
# first start it copies the primary with pg_basebackup (-R writes standby.signal and the
# connection to follow), then runs as a hot standby: read-only, replaying the primary's WAL.
# kb routes search, fetch and listings to it (database.read_replicas) and falls back to
# the primary while it lags behind a revocation (docs/scaling.md).
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    until pg_isready -h db -U "$POSTGRES_USER" -q; do sleep 1; done
    pg_basebackup -h db -U "$POSTGRES_USER" -D "$PGDATA" -X stream -R -c fast
    chmod 700 "$PGDATA"
fi
exec postgres -c hot_standby=on
