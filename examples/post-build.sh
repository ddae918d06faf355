#!/usr/bin/env bash
# Post a finished build to the relay from any CI, signed the Standard Webhooks way
# (a `type: generic` source). Needs bash, curl, openssl, base64, od and sed.
#
#   RELAY_URL=https://<relay>/ci RELAY_SECRET=whsec_... WEBHOOK_ID="$CI_BUILD_ID" \
#     examples/post-build.sh build.json        # or the body on stdin
#
# build.json is the build as JSON, e.g. {"platform": "android", "version": "2.4.0",
# "build_number": "187", "commit": "...", "artifact_url": "https://..."}.
# WEBHOOK_ID must be unique per build and the same on a retry: it is the event key, so a
# retried delivery never starts a run twice.
#
# Only what a retry can fix is retried: 409 (another delivery of this build is being handled),
# 429, 5xx and a failed connection, up to RELAY_ATTEMPTS times (5) with a doubling delay from
# RELAY_RETRY_DELAY seconds (2: 2+4+8+16 s). Any other answer is final; the relay's `reason` is
# printed either way. Exit 0 on a 2xx answer, 1 otherwise.
set -euo pipefail

url=${RELAY_URL:?set RELAY_URL to the source URL, e.g. https://<relay>/ci}
secret=${RELAY_SECRET:?set RELAY_SECRET to the signing secret of the source (whsec_...)}
id=${WEBHOOK_ID:?set WEBHOOK_ID to an id unique per build, the same on every retry}
attempts=${RELAY_ATTEMPTS:-5}
delay=${RELAY_RETRY_DELAY:-2}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat "${1:--}" >"$work/body"  # signed and sent byte for byte

# A whsec_ secret is base64 after its prefix; any other secret is used as its bytes.
if [[ $secret == whsec_* ]]; then
  key=$(printf %s "${secret#whsec_}" | base64 -d | od -An -v -tx1 | tr -d ' \n')
else
  key=$(printf %s "$secret" | od -An -v -tx1 | tr -d ' \n')
fi

sign() {  # the v1 signature of "{id}.{timestamp}.{body}"
  { printf '%s.%s.' "$id" "$1"; cat "$work/body"; } |
    openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -binary | base64 | tr -d '\n'
}

field() {  # a string field of the relay's JSON answer (its keys are unique)
  sed -nE 's/.*"'"$1"'":"(([^"\\]|\\.)*)".*/\1/p' "$work/answer"
}

for ((attempt = 1; ; attempt++)); do
  timestamp=$(date +%s)  # fresh on every attempt: the relay accepts 5 minutes of skew
  : >"$work/answer"
  status=$(curl -sS -o "$work/answer" -w '%{http_code}' -X POST "$url" \
    -H 'Content-Type: application/json' -H "webhook-id: $id" \
    -H "webhook-timestamp: $timestamp" -H "webhook-signature: v1,$(sign "$timestamp")" \
    --data-binary @"$work/body") || status=000
  reason=$(field reason)
  if [[ $status == 2* ]]; then
    echo "relay: $status $(field decision)${reason:+: $reason}"
    cat "$work/answer"
    echo
    exit 0
  fi
  echo "relay: ${status/#000/no answer} $(field decision)${reason:+: $reason}" >&2
  if [[ ! $status =~ ^(000|409|429|5..)$ ]]; then
    exit 1  # the request itself is wrong (a bad signature, a body no route can use): fix it
  fi
  if ((attempt >= attempts)); then
    echo "relay: giving up after $attempt attempts" >&2
    exit 1
  fi
  echo "relay: retrying in $delay s (attempt $((attempt + 1)) of $attempts)" >&2
  sleep "$delay"
  delay=$((delay * 2))
done
