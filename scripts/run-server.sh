#!/usr/bin/env bash
# Sets up and builds the server, creates a fresh API token and starts the server on its
# embedded defaults: the nginx edge on 127.0.0.1:8443 for clients, the server itself behind it
# on loopback, both stopped together (Ctrl-C); data/ holds the database and a self-signed
# certificate.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
mts=build/bin/mts
token=$("$mts" token create --name "quickstart-$(date -u +%Y%m%dT%H%M%S)" --days 30)
port=$("$mts" config get edge.port)
prefix=$("$mts" config get http.prefix)
cat <<MSG

A new API token (shown once, stored only as a hash):
  $token

Try it, while the server runs:
  curl -k -H "Authorization: Bearer $token" "https://127.0.0.1:$port$prefix/test-search?fromTime=$(date -u +%Y-%m-%dT00:00:00Z)"

MSG
exec "$mts" serve
