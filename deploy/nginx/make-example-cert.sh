#!/bin/sh
# A self-signed example certificate for the nginx in front of kb (docker-compose.yml,
# profile `replicas`): writes kb.crt and kb.key into DIR (default: certs/ next to this
# script). For trials only: clients must be told to trust kb.crt (curl --cacert). Use a
# certificate from your CA in production. The key is never committed (certs/.gitignore).
#
#   deploy/nginx/make-example-cert.sh [HOSTNAME] [DIR]
set -eu
host="${1:-localhost}"
dir="${2:-$(dirname "$0")/certs}"
mkdir -p "$dir"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -days 90 -sha256 \
    -subj "/CN=$host" \
    -addext "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1" \
    -keyout "$dir/kb.key" -out "$dir/kb.crt" 2>/dev/null
chmod 644 "$dir/kb.crt"
echo "wrote $dir/kb.crt and $dir/kb.key (self-signed for $host, 90 days)"
