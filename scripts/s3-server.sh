#!/usr/bin/env bash
# Starts a local S3-compatible server (moto) on 127.0.0.1 for the tests, creates the test
# bucket, and prints the endpoint. Installs moto from PyPI when it is missing.
# Usage: endpoint=$(scripts/s3-server.sh PIDFILE)
set -euo pipefail
pidfile=${1:?usage: s3-server.sh PIDFILE}
if ! python3 -c "import moto.server" 2>/dev/null; then
  python3 -m pip install --quiet 'moto[server]' >&2
fi
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m moto.server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
echo $! > "$pidfile"
endpoint="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if curl -s -o /dev/null -X PUT "$endpoint/spillway-test"; then
    echo "$endpoint"
    exit 0
  fi
  sleep 0.1
done
echo "the local S3 server did not start on $endpoint" >&2
exit 1
