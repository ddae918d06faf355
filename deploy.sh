#!/usr/bin/env bash
# Deploy the relay as a Cloud Run function (gen2), creating whatever is missing on the way:
# the APIs, a service account, its roles, the secrets the config names, the Firestore database
# and its TTL policy (dedup.store firestore), then the function. Run it again to update: what
# exists is left as it is, and the function gets a new revision.
#
#   ./deploy.sh --project my-project --region europe-west1 [--config relay.yaml] [--dry-run]
#
# Settings: a flag, else the environment variable, else the default.
#   --project PROJECT             required
#   --region REGION               required
#   --config CONFIG               relay.yaml; it is uploaded, so it must live in this directory
#   --function FUNCTION           revyl-relay
#   --service-account SERVICE_ACCOUNT
#                                 revyl-relay (an id in the project, or a full e-mail)
#   --memory MEMORY               512Mi
#   --timeout TIMEOUT             the config's dedup.lease_seconds (540s by default)
#   --min-instances MIN_INSTANCES 0
#   --cpu CPU                     1 (Cloud Run functions serve several requests at once only from 1)
#   --concurrency CONCURRENCY     8 webhooks at once per instance; also gunicorn's THREADS
#                                 (the README's Performance section says why 8)
#   --runtime RUNTIME             python312
#   --firestore-location FIRESTORE_LOCATION
#                                 the region
#   --cpu-always (CPU_ALWAYS=1)   after each deploy, give the function's Cloud Run service 1 vCPU
#                                 always allocated (instance-based billing), which a Slack
#                                 source's follow-ups need: see the README's Slack section
#   --dry-run (DRY_RUN=1)         print every gcloud command instead of running it
#
# A secret that does not exist yet (or has no version) gets its value from the environment
# variable named after it (eas-webhook-secret: EAS_WEBHOOK_SECRET), else from a prompt that
# does not echo. Values are never printed and never passed as arguments.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

PROJECT="${PROJECT:-}"
REGION="${REGION:-}"
CONFIG="${CONFIG:-relay.yaml}"
FUNCTION="${FUNCTION:-revyl-relay}"
SERVICE_ACCOUNT="${SERVICE_ACCOUNT:-revyl-relay}"
MEMORY="${MEMORY:-512Mi}"
TIMEOUT="${TIMEOUT:-}"
MIN_INSTANCES="${MIN_INSTANCES:-0}"
CPU="${CPU:-1}"
CONCURRENCY="${CONCURRENCY:-8}"
RUNTIME="${RUNTIME:-python312}"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-}"
DRY_RUN="${DRY_RUN:-0}"
CPU_ALWAYS="${CPU_ALWAYS:-0}"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --project) PROJECT="${2:-}"; shift 2 ;;
    --region) REGION="${2:-}"; shift 2 ;;
    --config) CONFIG="${2:-}"; shift 2 ;;
    --function) FUNCTION="${2:-}"; shift 2 ;;
    --service-account) SERVICE_ACCOUNT="${2:-}"; shift 2 ;;
    --memory) MEMORY="${2:-}"; shift 2 ;;
    --timeout) TIMEOUT="${2:-}"; shift 2 ;;
    --min-instances) MIN_INSTANCES="${2:-}"; shift 2 ;;
    --cpu) CPU="${2:-}"; shift 2 ;;
    --concurrency) CONCURRENCY="${2:-}"; shift 2 ;;
    --runtime) RUNTIME="${2:-}"; shift 2 ;;
    --firestore-location) FIRESTORE_LOCATION="${2:-}"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --cpu-always) CPU_ALWAYS=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see ./deploy.sh --help)" ;;
  esac
done

[[ -n $PROJECT ]] || die "no project: pass --project PROJECT (or set PROJECT)"
[[ -n $REGION ]] || die "no region: pass --region REGION (or set REGION), e.g. europe-west1"
[[ -n $CONFIG ]] || die "no config: pass --config FILE (or set CONFIG)"
[[ -f $CONFIG ]] || die "config $CONFIG not found: pass --config FILE (or set CONFIG)"

if [[ -z ${PYTHON:-} ]]; then
  if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

# The function reads its config from the uploaded directory, by a path relative to it.
RELATIVE='import os, sys; print(os.path.relpath(os.path.realpath(sys.argv[1])))'
CONFIG_PATH="$("$PYTHON" -c "$RELATIVE" "$CONFIG")"
[[ $CONFIG_PATH != ../* ]] || die "config $CONFIG is outside $ROOT: it would not be uploaded"
if [[ -f .gcloudignore ]]; then
  while IFS= read -r pattern; do
    if [[ $pattern == */ && $CONFIG_PATH == "$pattern"* ]]; then
      die "config $CONFIG_PATH is under $pattern, which .gcloudignore leaves out of the upload"
    fi
  done < .gcloudignore
fi

# The config's sources, secrets and store, read by the relay's own config loader (which
# refuses an invalid config, saying why).
INFO="$("$PYTHON" -m relay deploy-info --config "$CONFIG_PATH")" \
  || die "fix the config first (python -m relay check --config $CONFIG_PATH shows it)"

field() { awk -F'\t' -v kind="$1" -v n="$2" '$1 == kind { print $n }' <<< "$INFO"; }
LEASE="$(field lease 2)"
if [[ -z $TIMEOUT ]]; then
  TIMEOUT="${LEASE}s"
elif [[ ${TIMEOUT%s} != "$LEASE" ]]; then
  printf 'warning: --timeout %s differs from dedup.lease_seconds %s: keep them equal, so a\n' \
    "$TIMEOUT" "$LEASE" >&2
  printf '         delivery still running is never taken for a dead one\n' >&2
fi
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-$REGION}"
if [[ $SERVICE_ACCOUNT == *@* ]]; then SA_EMAIL="$SERVICE_ACCOUNT"
else SA_EMAIL="${SERVICE_ACCOUNT}@${PROJECT}.iam.gserviceaccount.com"; fi
MEMBER="serviceAccount:$SA_EMAIL"

if [[ $DRY_RUN != 1 ]] && ! command -v gcloud > /dev/null; then
  die "gcloud is not on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk)"
fi

# --- running, or printing, gcloud -------------------------------------------------------------

quoted() {
  local arg out=()
  for arg in "$@"; do
    if [[ $arg =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then
      out+=("$arg")
    else
      out+=("'${arg//\'/\'\\\'\'}'")  # single-quoted, for pasting into a shell
    fi
  done
  printf '%s' "${out[*]}"
}
step() { printf '\n# %s\n' "$*"; }
run() {
  if [[ $DRY_RUN == 1 ]]; then printf '+ %s\n' "$(quoted "$@")"; else "$@"; fi
}
# `quietly CMD…`: run, without the output (IAM commands print the whole policy).
quietly() {
  if [[ $DRY_RUN == 1 ]]; then printf '+ %s\n' "$(quoted "$@")"; else "$@" > /dev/null; fi
}
# `exists CMD…`: does the describe/list command succeed? A dry run shows it and assumes not.
exists() {
  if [[ $DRY_RUN == 1 ]]; then printf '+ %s\n' "$(quoted "$@")"; return 1; fi
  "$@" > /dev/null 2>&1
}
# `create WHAT CMD…`: run a command that the check before it found necessary.
create() {
  local what="$1"
  shift
  if [[ $DRY_RUN == 1 ]]; then printf '+ %s   # if missing\n' "$(quoted "$@")"; return; fi
  "$@"
  printf 'created %s\n' "$what"
}

# The value of a missing secret: from its variable, else a prompt that does not echo.
secret_value() {
  local name="$1" variable="$2" value=""
  if [[ $variable != - && -n ${!variable:-} ]]; then
    value="${!variable}"
  elif [[ -t 0 ]]; then
    read -rsp "Value of the secret $name (not shown): " value
    printf '\n' >&2
    value="${value%$'\r'}"  # a terminal may send Enter as CR, which is no part of the value
  else
    die "secret $name needs a value: set $variable, or run deploy.sh in a terminal to be asked"
  fi
  [[ -n $value ]] || die "secret $name: an empty value is not a secret"
  printf '%s' "$value"
}

# `add_version NAME PROJECT VARIABLE [VALUE]`: store the secret's value (read it if not given).
add_version() {
  local name="$1" project="$2" variable="$3" value="${4:-}"
  if [[ $DRY_RUN == 1 ]]; then
    printf '+ %s   # if missing; the value from $%s or a prompt, never shown\n' \
      "$(quoted gcloud secrets versions add "$name" "--project=$project" --data-file=-)" \
      "$variable"
    return
  fi
  [[ -n $value ]] || value="$(secret_value "$name" "$variable")"
  printf '%s' "$value" | gcloud secrets versions add "$name" "--project=$project" \
    --data-file=- --quiet > /dev/null
  printf 'stored a value for secret %s\n' "$name"
}

# --- what the relay needs ---------------------------------------------------------------------

[[ $DRY_RUN == 1 ]] && printf '# dry run: nothing is changed; every gcloud command is printed\n'
printf 'deploying %s (config %s) to project %s, region %s\n' \
  "$FUNCTION" "$CONFIG_PATH" "$PROJECT" "$REGION"

step "APIs (enabling an enabled API changes nothing)"
APIS=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com secretmanager.googleapis.com)
[[ -n $(field firestore 2) ]] && APIS+=(firestore.googleapis.com)
run gcloud services enable "${APIS[@]}" "--project=$PROJECT" --quiet

step "service account $SA_EMAIL"
if exists gcloud iam service-accounts describe "$SA_EMAIL" "--project=$PROJECT"; then
  printf 'exists\n'
else
  [[ $SERVICE_ACCOUNT != *@* ]] || [[ $DRY_RUN == 1 ]] \
    || die "service account $SA_EMAIL not found (give an id to have it created)"
  create "the service account" gcloud iam service-accounts create "${SA_EMAIL%%@*}" \
    "--project=$PROJECT" "--display-name=Revyl build relay" --quiet
fi

SECRET_MOUNTS=()
# The lines come in on descriptor 3, so that the prompt for a value still reads the terminal.
while IFS=$'\t' read -r kind name project mount variable used_by <&3; do
  [[ $kind == secret ]] || continue
  [[ $project != - ]] || project="$PROJECT"
  step "secret $name (project $project) for $used_by"
  if exists gcloud secrets describe "$name" "--project=$project"; then
    versions="$(gcloud secrets versions list "$name" "--project=$project" \
      --filter=state:ENABLED --limit=1 '--format=value(name)')"
    if [[ -n $versions ]]; then
      printf 'exists\n'
    else
      add_version "$name" "$project" "$variable"
    fi
  else
    value=""  # read before creating, so a missing value leaves no empty secret behind
    [[ $DRY_RUN == 1 ]] || value="$(secret_value "$name" "$variable")"
    create "secret $name" gcloud secrets create "$name" "--project=$project" \
      --replication-policy=automatic --quiet
    add_version "$name" "$project" "$variable" "$value"
    value=""
  fi
  quietly gcloud secrets add-iam-policy-binding "$name" "--project=$project" "--member=$MEMBER" \
    --role=roles/secretmanager.secretAccessor --condition=None --quiet
  if [[ $mount != - ]]; then
    ref="$name"
    [[ $project == "$PROJECT" ]] || ref="projects/$project/secrets/$name"
    SECRET_MOUNTS+=("$mount=$ref:latest")
  fi
done 3<<< "$INFO"

DATABASE="$(field firestore 2)"
if [[ -n $DATABASE ]]; then
  COLLECTION="$(field firestore 3)"
  TTL_FIELD="$(field firestore 4)"
  step "Firestore database $DATABASE ($FIRESTORE_LOCATION), TTL on $COLLECTION.$TTL_FIELD"
  if exists gcloud firestore databases describe "--database=$DATABASE" "--project=$PROJECT"; then
    printf 'database exists\n'
  else
    create "the database" gcloud firestore databases create "--database=$DATABASE" \
      "--location=$FIRESTORE_LOCATION" --type=firestore-native "--project=$PROJECT" --quiet
  fi
  ttl_list=(gcloud firestore fields ttls list "--collection-group=$COLLECTION"
    "--database=$DATABASE" "--project=$PROJECT" '--format=value(name)')
  if [[ $DRY_RUN == 1 ]]; then
    exists "${ttl_list[@]}" || true
    ttl_fields=""
  else
    ttl_fields="$("${ttl_list[@]}")"
  fi
  if grep -q "/fields/$TTL_FIELD\$" <<< "$ttl_fields"; then
    printf 'TTL policy exists\n'
  else
    create "the TTL policy (it takes effect within minutes)" \
      gcloud firestore fields ttls update "$TTL_FIELD" "--collection-group=$COLLECTION" \
      "--database=$DATABASE" --enable-ttl --async "--project=$PROJECT" --quiet
  fi
  quietly gcloud projects add-iam-policy-binding "$PROJECT" "--member=$MEMBER" \
    --role=roles/datastore.user --condition=None --quiet
fi

# --- the function -----------------------------------------------------------------------------

step "function $FUNCTION"
# THREADS: functions-framework's gunicorn threads, one per webhook served at once
ENV_VARS="RELAY_CONFIG=$CONFIG_PATH,GOOGLE_CLOUD_PROJECT=$PROJECT,THREADS=$CONCURRENCY"
if [[ ${#SECRET_MOUNTS[@]} -gt 0 ]]; then
  SECRETS_FLAG="--set-secrets=$(IFS=,; printf '%s' "${SECRET_MOUNTS[*]}")"
else
  SECRETS_FLAG="--clear-secrets"
fi
run gcloud functions deploy "$FUNCTION" --gen2 "--runtime=$RUNTIME" "--region=$REGION" \
  "--project=$PROJECT" --source=. --entry-point=relay_webhook --trigger-http \
  --allow-unauthenticated "--service-account=$SA_EMAIL" "--timeout=$TIMEOUT" \
  "--memory=$MEMORY" "--min-instances=$MIN_INSTANCES" "--cpu=$CPU" \
  "--concurrency=$CONCURRENCY" "--set-env-vars=$ENV_VARS" \
  "$SECRETS_FLAG" --quiet

if [[ $CPU_ALWAYS == 1 ]]; then
  step "CPU always allocated (the function's Cloud Run service; re-applied on every deploy)"
  quietly gcloud run services update "$FUNCTION" "--region=$REGION" "--project=$PROJECT" \
    --cpu=1 --no-cpu-throttling --quiet
fi

describe=(gcloud functions describe "$FUNCTION" "--region=$REGION" "--project=$PROJECT"
  '--format=value(serviceConfig.uri)')
if [[ $DRY_RUN == 1 ]]; then
  run "${describe[@]}"
  URI="https://<function URL>"
else
  URI="$("${describe[@]}")"
  [[ -n $URI ]] || die "the function has no URL yet: gcloud functions describe $FUNCTION"
fi

printf '\nfunction URL  %s   (check: curl %s/healthz)\n' "$URI" "$URI"
printf '\npaste into each build system:\n'
while IFS=$'\t' read -r kind name type hint; do
  [[ $kind == source ]] || continue
  printf '  %-10s %s\n' "$name" "$URI/$name"
  printf '  %-10s %s\n' "" "${hint//\{url\}/$URI/$name}"
done <<< "$INFO"
if [[ $CPU_ALWAYS != 1 ]] && awk -F'\t' '$1 == "source" && $3 == "slack" { found = 1 }
    END { exit !found }' <<< "$INFO"; then
  printf '\nnote: a Slack source posts late answers after the response; for that the function\n'
  printf '      needs CPU always allocated: deploy with --cpu-always (README: Chat-ops from Slack)\n'
fi
if [[ $(field dry-run 2) == yes ]]; then
  printf '\nnote: the config has no revyl.token: the relay verifies and routes, starts nothing\n'
fi
