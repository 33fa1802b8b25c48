#!/usr/bin/env bash
# Post the seed's request to a running service and pretty-print the answer.
#   ./test-api.sh                 # http://127.0.0.1:5001
#   PORT=5077 ./test-api.sh       # another port;  HOST=... for another host
#   ./test-api.sh '{"isin": "US0378331005", "horizon_days": 3}'   # another request body
set -euo pipefail

host="${HOST:-127.0.0.1}"
port="${PORT:-${KRONOS_PORT:-5001}}"
body="${1:-{\"isin\": \"US67066G1040\", \"horizon_days\": 5\}}"
url="http://${host}:${port}/predict"

echo "POST ${url}" >&2
echo "${body}" >&2
# Pretty-print whatever came back (an answer or a problem document), then exit with curl's status:
# 22 for an HTTP error, 7 when nothing listens, and so on.
status=0
answer="$(curl --silent --show-error --fail-with-body --max-time 120 \
    -H 'Content-Type: application/json' -d "${body}" "${url}")" || status=$?
if [[ -n "${answer}" ]]; then
    printf '%s\n' "${answer}" | python3 -m json.tool
fi
exit "${status}"
