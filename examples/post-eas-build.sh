#!/usr/bin/env bash
# Post the sample EAS "build finished" webhook to a relay started with `make run`, and print
# the relay's status line and its JSON answer, indented. Exit 0 on a 2xx answer, else 1.
# The signature is HMAC-SHA1 of the file's exact bytes with EAS_WEBHOOK_SECRET from
# examples/local.env, so it verifies as is; edit the file and the relay answers 401.
# RELAY_URL overrides the relay's address (default http://127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")"
URL="${RELAY_URL:-http://127.0.0.1:8080}/eas"
HEADERS=$(mktemp)
BODY=$(mktemp)
trap 'rm -f "$HEADERS" "$BODY"' EXIT

if ! CODE=$(curl -sS -X POST "$URL" -D "$HEADERS" -o "$BODY" -w '%{http_code}' \
  -H 'Content-Type: application/json' \
  -H 'expo-signature: sha1=9deefcf95c9ff9730651ba5951a8f2c8cf570880' \
  --data-binary @eas-build-finished.json); then
  echo "no answer from $URL: is the relay running (make run)?" >&2
  exit 1
fi

head -n 1 "$HEADERS" | tr -d '\r'
if ! python3 -m json.tool --indent 2 "$BODY" 2>/dev/null; then
  cat "$BODY"
  echo
fi
[[ $CODE == 2* ]]
