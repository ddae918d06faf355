#!/usr/bin/env bash
# Post the sample EAS "build finished" webhook to a relay started with `make run`.
# The signature is HMAC-SHA1 of the file's exact bytes with EAS_WEBHOOK_SECRET from
# examples/local.env, so it verifies as is; edit the file and the relay answers 401.
set -euo pipefail
cd "$(dirname "$0")"
curl -sS -X POST "${RELAY_URL:-http://127.0.0.1:8080}/eas" \
  -H 'Content-Type: application/json' \
  -H 'expo-signature: sha1=9deefcf95c9ff9730651ba5951a8f2c8cf570880' \
  --data-binary @eas-build-finished.json
echo
