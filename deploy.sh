#!/usr/bin/env bash
# Deploy the relay as a Cloud Run function (gen2), creating whatever is missing on the way:
# the APIs, a service account, its roles, the secrets the config names, the Firestore database
# and its TTL policy (dedup.store firestore), the Cloud Tasks queue and its roles (verdicts
# follow: cloud-tasks), then the function. Run it again to update: what exists is left as it
# is, and the function gets a new revision.
#
#   ./deploy.sh [--project PROJECT] [--region REGION] [--config relay.yaml] [--dry-run]
#
# Settings are flags only (--name VALUE or --name=VALUE), each checked before anything runs;
# deploy.sh reads no PROJECT, REGION, TIMEOUT… from the environment, where a CI runner may
# have set them for something else.
#   --project PROJECT             else gcloud's: $CLOUDSDK_CORE_PROJECT, else the project
#                                 `gcloud config set project` set
#   --region REGION               else gcloud's: $CLOUDSDK_FUNCTIONS_REGION, functions/region,
#                                 $CLOUDSDK_RUN_REGION, run/region (only a region you set:
#                                 never gcloud's built-in us-central1)
#   --config FILE                 relay.yaml; it is uploaded, so it must live in this directory
#   --function NAME               revyl-relay
#   --service-account ACCOUNT     revyl-relay (an id in the project, or a full e-mail)
#   --memory AMOUNT               512Mi (a number and k, M, G, Ki, Mi or Gi: 512Mi, 1Gi)
#   --timeout SECONDS             the config's dedup.lease_seconds (540 by default); 1 to 3600,
#                                 the limit of Cloud Run functions
#   --min-instances N             0
#   --cpu CPUS                    1 (Cloud Run serves several requests at once only from 1)
#   --concurrency N               8 webhooks at once per instance (1 to 1000); also gunicorn's
#                                 THREADS (docs/performance.md says why 8)
#   --runtime RUNTIME             python312
#   --firestore-location LOCATION the region (or a multi-region such as eur3, nam5)
#   --cpu-always                  after each deploy, give the function's Cloud Run service 1 vCPU
#                                 always allocated (instance-based billing), which a Slack
#                                 source's follow-ups need: see docs/slack.md
#   --allow-memory-store          deploy a config with dedup.store memory anyway (a trial)
#   --allow-local-verdicts        deploy a config with verdicts.follow local anyway (a trial)
#   --dry-run                     print every gcloud command instead of running it
#
# dedup.store memory is refused without --allow-memory-store, and warned about with it: each
# instance of the function remembers only the deliveries it served itself, and forgets them
# when it stops, so a redelivery that reaches another instance starts its runs a second time.
# A deployment wants dedup: {store: firestore, collection: relay-events, ttl_days: 30}.
# verdicts.follow local is refused without --allow-local-verdicts, for the same reason: the
# runs are followed by threads of the instance that started them, which Cloud Run throttles
# after each answer and stops with the instance. A deployment follows them with Cloud Tasks:
# verdicts: {follow: cloud-tasks, cloud_tasks: {queue, url, service_account}}.
#
# Secrets: one that does not exist yet, has no version, or whose latest version is empty or
# only whitespace gets its value from the environment variable named after it
# (eas-webhook-secret: EAS_WEBHOOK_SECRET), else from a prompt that does not echo. An empty
# or whitespace value is refused: as a signing key anyone could compute it. Values are never
# printed and never passed as arguments; an existing version is checked by its length only.
#
# verdicts follow: cloud-tasks: the queue verdicts.cloud_tasks.queue names (created with the
# retry settings explained at RETRIES below; an existing queue is left as it is), the tasks'
# account when it is of the project, and for the function's account roles/cloudtasks.enqueuer
# on that queue and roles/iam.serviceAccountUser on the tasks' account. After the deploy it
# checks that verdicts.cloud_tasks.url is the function's URL (known once the function exists).
#
# Python: deploy.sh reads the config with the relay's own loader, so it needs a Python with
# requirements.txt installed: .venv/bin/python (`make lint` creates .venv), else python3, or
# the interpreter $RELAY_DEPLOY_PYTHON names.
#
# Exit status: 0 deployed (or, with --dry-run, printed); 1 refused or failed; 3 deployed, but
# verdicts.cloud_tasks.url is not the function's URL: set it and run deploy.sh again.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

die() { printf 'deploy.sh: %s\n' "$*" >&2; exit 1; }
warn() { printf 'deploy.sh: warning: %s\n' "$*" >&2; }
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; }

# The names this script once read from the environment: say they are ignored, then drop them,
# so that nothing it runs sees them either.
LEGACY=()
for name in PROJECT REGION CONFIG FUNCTION SERVICE_ACCOUNT MEMORY TIMEOUT MIN_INSTANCES CPU \
    CONCURRENCY RUNTIME FIRESTORE_LOCATION DRY_RUN CPU_ALWAYS PYTHON; do
  if [[ -n ${!name:-} ]]; then LEGACY+=("$name"); fi
  unset "$name"
done

PROJECT="" PROJECT_FROM="--project"
REGION="" REGION_FROM="--region"
CONFIG="relay.yaml"
FUNCTION="revyl-relay"
SERVICE_ACCOUNT="revyl-relay"
MEMORY="512Mi"
TIMEOUT=""
MIN_INSTANCES="0"
CPU="1"
CONCURRENCY="8"
RUNTIME="python312"
FIRESTORE_LOCATION=""
DRY_RUN=0
CPU_ALWAYS=0
ALLOW_MEMORY_STORE=0
ALLOW_LOCAL_VERDICTS=0

while [[ $# -gt 0 ]]; do
  flag="$1"
  shift
  if [[ $flag == --*=* ]]; then
    set -- "${flag#*=}" "$@"
    flag="${flag%%=*}"
  fi
  case "$flag" in
    --dry-run) DRY_RUN=1; continue ;;
    --cpu-always) CPU_ALWAYS=1; continue ;;
    --allow-memory-store) ALLOW_MEMORY_STORE=1; continue ;;
    --allow-local-verdicts) ALLOW_LOCAL_VERDICTS=1; continue ;;
    -h|--help) usage; exit 0 ;;
    --project|--region|--config|--function|--service-account|--memory|--timeout) ;;
    --min-instances|--cpu|--concurrency|--runtime|--firestore-location) ;;
    *) die "unknown argument $flag (see ./deploy.sh --help)" ;;
  esac
  [[ $# -gt 0 && -n $1 && $1 != --* ]] || die "$flag needs a value (see ./deploy.sh --help)"
  value="$1"
  shift
  case "$flag" in
    --project) PROJECT="$value" ;;
    --region) REGION="$value" ;;
    --config) CONFIG="$value" ;;
    --function) FUNCTION="$value" ;;
    --service-account) SERVICE_ACCOUNT="$value" ;;
    --memory) MEMORY="$value" ;;
    --timeout) TIMEOUT="$value" ;;
    --min-instances) MIN_INSTANCES="$value" ;;
    --cpu) CPU="$value" ;;
    --concurrency) CONCURRENCY="$value" ;;
    --runtime) RUNTIME="$value" ;;
    --firestore-location) FIRESTORE_LOCATION="$value" ;;
  esac
done

if [[ ${#LEGACY[@]} -gt 0 ]]; then
  printf 'note: deploy.sh takes its settings from flags only; it ignores %s in the environment\n' \
    "$(IFS=,; printf '%s' "${LEGACY[*]}" | sed 's/,/, /g')" >&2
fi

# --- project and region: the flags, else what gcloud is set to ------------------------------

HAVE_GCLOUD=0
if command -v gcloud > /dev/null; then HAVE_GCLOUD=1; fi
[[ $DRY_RUN == 1 || $HAVE_GCLOUD == 1 ]] \
  || die "gcloud is not on PATH: install the Google Cloud CLI (https://cloud.google.com/sdk)"

GC_PROJECT="" GC_FUNCTIONS_REGION="" GC_RUN_REGION=""
if [[ ( -z $PROJECT && -z ${CLOUDSDK_CORE_PROJECT:-} ) || ( -z $REGION \
    && -z ${CLOUDSDK_FUNCTIONS_REGION:-} ) ]] && [[ $HAVE_GCLOUD == 1 ]]; then
  # `config list` shows only what was set (a file or a CLOUDSDK_ variable); `config get
  # functions/region` would answer gcloud's built-in us-central1 to someone who set nothing.
  IFS=, read -r GC_PROJECT GC_FUNCTIONS_REGION GC_RUN_REGION <<< "$(gcloud config list \
    '--format=value[separator=","](core.project,functions.region,run.region)' 2> /dev/null \
    || true)" || true
fi
if [[ -z $PROJECT ]]; then
  if [[ -n ${CLOUDSDK_CORE_PROJECT:-} ]]; then
    PROJECT="$CLOUDSDK_CORE_PROJECT" PROJECT_FROM="\$CLOUDSDK_CORE_PROJECT"
  elif [[ -n $GC_PROJECT ]]; then
    PROJECT="$GC_PROJECT" PROJECT_FROM="gcloud config core/project"
  else
    die "no project: pass --project PROJECT, or set gcloud's (gcloud config set project PROJECT)"
  fi
fi
if [[ -z $REGION ]]; then
  if [[ -n ${CLOUDSDK_FUNCTIONS_REGION:-} ]]; then
    REGION="$CLOUDSDK_FUNCTIONS_REGION" REGION_FROM="\$CLOUDSDK_FUNCTIONS_REGION"
  elif [[ -n $GC_FUNCTIONS_REGION ]]; then
    REGION="$GC_FUNCTIONS_REGION" REGION_FROM="gcloud config functions/region"
  elif [[ -n ${CLOUDSDK_RUN_REGION:-} ]]; then
    REGION="$CLOUDSDK_RUN_REGION" REGION_FROM="\$CLOUDSDK_RUN_REGION"
  elif [[ -n $GC_RUN_REGION ]]; then
    REGION="$GC_RUN_REGION" REGION_FROM="gcloud config run/region"
  else
    die "no region: pass --region REGION (e.g. europe-west1), or set gcloud's" \
      "(gcloud config set functions/region REGION)"
  fi
fi

# --- every setting checked ------------------------------------------------------------------

# `valid VALUE REGEX MESSAGE…`: refuse VALUE unless it matches.
valid() {
  local value="$1" pattern="$2"
  shift 2
  [[ $value =~ $pattern ]] || die "$@"
}
PROJECT_ID='^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$'
REGION_NAME='^[a-z]+(-[a-z]+)+[0-9]+$'
valid "$PROJECT" "$PROJECT_ID" "project '$PROJECT' ($PROJECT_FROM) is not a project id" \
  "(6 to 30 lowercase letters, digits and hyphens, starting with a letter)"
valid "$REGION" "$REGION_NAME" "region '$REGION' ($REGION_FROM) is not a region like europe-west1"
valid "$FUNCTION" '^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$' "--function '$FUNCTION' is not a function" \
  "name (up to 63 lowercase letters, digits and hyphens, starting with a letter)"
valid "$SERVICE_ACCOUNT" '^([a-z][a-z0-9-]{4,28}[a-z0-9]|[^@[:space:]]+@[a-z0-9.-]+)$' \
  "--service-account '$SERVICE_ACCOUNT' is neither an account id (6 to 30 lowercase letters," \
  "digits and hyphens) nor an e-mail"
valid "$MEMORY" '^[1-9][0-9]{0,8}(k|M|G|Ki|Mi|Gi)[bB]?$' \
  "--memory '$MEMORY' is not an amount of memory like 512Mi or 1Gi"
valid "$MIN_INSTANCES" '^(0|[1-9][0-9]{0,2}|1000)$' \
  "--min-instances '$MIN_INSTANCES' is not a whole number from 0 to 1000"
valid "$CONCURRENCY" '^([1-9][0-9]{0,2}|1000)$' \
  "--concurrency '$CONCURRENCY' is not a whole number from 1 to 1000"
valid "$CPU" '^([0-9]{1,2}|[0-9]{0,2}\.[0-9]{1,3}|[1-9][0-9]{0,4}m)$' \
  "--cpu '$CPU' is not a number of vCPUs like 1, 2 or 0.5"
valid "$RUNTIME" '^python3[0-9]{1,2}$' "--runtime '$RUNTIME' is not a Python runtime like python312"
if [[ -n $TIMEOUT ]]; then
  valid "$TIMEOUT" '^[1-9][0-9]{0,3}s?$' "--timeout '$TIMEOUT' is not a number of seconds"
  TIMEOUT="${TIMEOUT%s}"
  (( TIMEOUT <= 3600 )) \
    || die "--timeout ${TIMEOUT}s is more than 3600s, the limit of Cloud Run functions"
fi
if [[ -n $FIRESTORE_LOCATION ]]; then
  valid "$FIRESTORE_LOCATION" '^[a-z]+(-[a-z]+)*[0-9]+$' "--firestore-location" \
    "'$FIRESTORE_LOCATION' is not a location like europe-west1 or eur3"
fi
CPU_VALUE="$CPU"
[[ $CPU != *m ]] || CPU_VALUE="$(awk -v m="${CPU%m}" 'BEGIN { print m / 1000 }')"
awk -v c="$CPU_VALUE" 'BEGIN { exit !(c > 0) }' || die "--cpu '$CPU' is not more than 0"
if [[ $CONCURRENCY != 1 ]] && awk -v c="$CPU_VALUE" 'BEGIN { exit !(c < 1) }'; then
  die "--cpu $CPU is less than 1 vCPU, with which Cloud Run serves one request at a time:" \
    "pass --concurrency 1, or --cpu 1 or more"
fi
[[ -n $CONFIG ]] || die "no config: pass --config FILE"
[[ -f $CONFIG ]] || die "config $CONFIG not found: pass --config FILE"

# --- the config, read by the relay's own loader ---------------------------------------------

if [[ -n ${RELAY_DEPLOY_PYTHON:-} ]]; then
  PYTHON="$RELAY_DEPLOY_PYTHON"
  command -v "$PYTHON" > /dev/null || die "RELAY_DEPLOY_PYTHON=$PYTHON: no such program"
elif [[ -x .venv/bin/python ]]; then
  PYTHON=.venv/bin/python
else
  PYTHON=python3
  command -v python3 > /dev/null || die "no .venv here and no python3 on PATH: install Python" \
    "3.12, then: python3 -m venv .venv && .venv/bin/pip install -r requirements.txt"
fi
# Can it import the relay? If not, that is the set-up, not the config: say what to run.
if ! import_error="$("$PYTHON" -c 'import relay.cli.deploy_info' 2>&1)"; then
  reason="$(tail -n 1 <<< "$import_error")"
  case "$PYTHON" in
    "${RELAY_DEPLOY_PYTHON:-}")
      die "RELAY_DEPLOY_PYTHON=$PYTHON cannot import the relay ($reason): install" \
        "requirements.txt into it ($PYTHON -m pip install -r requirements.txt)" ;;
    .venv/bin/python)
      die ".venv cannot import the relay ($reason): reinstall its requirements:" \
        ".venv/bin/pip install -r requirements.txt (or: make lint)" ;;
    *)
      die "no .venv here, and python3 cannot import the relay ($reason): create .venv:" \
        "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt (or: make lint," \
        "which adds the dev tools), or set RELAY_DEPLOY_PYTHON to a Python that has them" ;;
  esac
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

# The config's sources, secrets, store and queue (the loader refuses an invalid config, saying why).
INFO="$("$PYTHON" -m relay deploy-info --config "$CONFIG_PATH")" \
  || die "fix the config first (python -m relay check --config $CONFIG_PATH shows it)"

field() { awk -F'\t' -v kind="$1" -v n="$2" '$1 == kind { print $n }' <<< "$INFO"; }

if [[ $(field store 2) == memory ]]; then
  [[ $ALLOW_MEMORY_STORE == 1 ]] || die "$CONFIG_PATH has dedup.store memory, which a" \
    "deployment cannot rely on: each instance remembers only its own deliveries, so a" \
    "redelivery reaching another instance starts its runs twice. Use dedup: {store: firestore," \
    "collection: relay-events, ttl_days: 30}, or pass --allow-memory-store to deploy it anyway"
fi
if [[ $(field verdicts 2) == local ]]; then
  [[ $ALLOW_LOCAL_VERDICTS == 1 ]] || die "$CONFIG_PATH has verdicts.follow local, which a" \
    "deployment cannot rely on: the runs would be followed by the threads of the instance" \
    "that started them, which Cloud Run throttles after each answer and stops with the" \
    "instance. Use verdicts: {follow: cloud-tasks, cloud_tasks: {queue, url," \
    "service_account}}, or pass --allow-local-verdicts to deploy it anyway"
fi

LEASE="$(field lease 2)"
if [[ -z $TIMEOUT ]]; then
  (( LEASE <= 3600 )) || die "dedup.lease_seconds $LEASE is more than 3600, the limit of Cloud" \
    "Run functions, and the function's timeout must equal it: lower it in $CONFIG_PATH"
  TIMEOUT="$LEASE"
elif [[ $TIMEOUT != "$LEASE" ]]; then
  printf 'warning: --timeout %ss differs from dedup.lease_seconds %s: keep them equal, so a\n' \
    "$TIMEOUT" "$LEASE" >&2
  printf '         delivery still running is never taken for a dead one\n' >&2
fi
TIMEOUT="${TIMEOUT}s"
FIRESTORE_LOCATION="${FIRESTORE_LOCATION:-$REGION}"
if [[ $SERVICE_ACCOUNT == *@* ]]; then SA_EMAIL="$SERVICE_ACCOUNT"
else SA_EMAIL="${SERVICE_ACCOUNT}@${PROJECT}.iam.gserviceaccount.com"; fi
MEMBER="serviceAccount:$SA_EMAIL"

QUEUE_PATH="$(field tasks 2)"
if [[ -n $QUEUE_PATH ]]; then
  TASKS_SA="$(field tasks 3)"
  TASKS_URL="$(field tasks 4)"
  POLL_SECONDS="$(field tasks 5)"
  GIVE_UP_SECONDS="$(field tasks 6)"
  IFS=/ read -r _ QUEUE_PROJECT _ QUEUE_LOCATION _ QUEUE <<< "$QUEUE_PATH"
  # RETRIES: a status check (one task) that fails is retried
  # - no sooner than poll_seconds: the next check would not have come earlier, and a Revyl or
  #   a reporter in trouble is not hammered;
  # - doubling 4 times, to at most 5 minutes (or poll_seconds, if longer) between attempts:
  #   once the trouble is over, the verdict is reported within minutes;
  # - for give_up_seconds, and at least 5 attempts (Cloud Tasks stops when both are reached):
  #   as long as the relay would follow the run, and no longer; a check that fails for good
  #   does not retry for the 31 days a task may live.
  MAX_BACKOFF=$(( POLL_SECONDS > 300 ? POLL_SECONDS : 300 ))
  RETRY_FLAGS=(--max-attempts=5 "--min-backoff=${POLL_SECONDS}s" "--max-backoff=${MAX_BACKOFF}s"
    --max-doublings=4 "--max-retry-duration=${GIVE_UP_SECONDS}s")
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

blank() { [[ ! $1 =~ [^[:space:]] ]]; }

# The value of a secret to store: from its variable, else a prompt that does not echo.
secret_value() {
  local name="$1" variable="$2" value=""
  if [[ -n ${!variable+set} ]]; then
    value="${!variable}"
    if blank "$value"; then
      die "secret $name: \$$variable is empty or only whitespace, which anyone could sign" \
        "with: set it to the real value (nothing was stored)"
    fi
  elif [[ -t 0 ]]; then
    read -rsp "Value of the secret $name (not shown): " value
    printf '\n' >&2
    value="${value%$'\r'}"  # a terminal may send Enter as CR, which is no part of the value
    if blank "$value"; then
      die "secret $name: the value typed is empty or only whitespace: nothing was stored"
    fi
  else
    die "secret $name needs a value: set $variable, or run deploy.sh in a terminal to be asked"
  fi
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

# `latest_is_blank NAME PROJECT`: 0 if the secret's latest version is empty or only whitespace,
# 1 if it is not, 2 if it cannot be read. Only its length, whitespace removed, leaves the pipe.
latest_is_blank() {
  local length
  length="$(gcloud secrets versions access latest "--secret=$1" "--project=$2" 2> /dev/null \
    | tr -d '[:space:]' | wc -c)" || return 2
  (( length == 0 ))
}

# --- what the relay needs ---------------------------------------------------------------------

[[ $DRY_RUN == 1 ]] && printf '# dry run: nothing is changed; every gcloud command is printed\n'
printf 'deploying %s (config %s) to project %s, region %s\n' \
  "$FUNCTION" "$CONFIG_PATH" "$PROJECT" "$REGION"
printf '(project from %s, region from %s)\n' "$PROJECT_FROM" "$REGION_FROM"
if [[ $(field verdicts 2) == local ]]; then
  warn "verdicts.follow is local (--allow-local-verdicts): verdicts are followed by the" \
    "instance that started the runs, and lost when it is throttled or stops"
fi
if [[ $(field store 2) == memory ]]; then
  warn "dedup.store is memory (--allow-memory-store): each instance deduplicates only its own" \
    "deliveries, and forgets them when it stops; a redelivery reaching another instance" \
    "starts its runs twice. For a deployment: dedup: {store: firestore}"
fi

step "APIs (enabling an enabled API changes nothing)"
APIS=(cloudfunctions.googleapis.com run.googleapis.com cloudbuild.googleapis.com
  artifactregistry.googleapis.com secretmanager.googleapis.com)
[[ -n $(field firestore 2) ]] && APIS+=(firestore.googleapis.com)
[[ -n $QUEUE_PATH && $QUEUE_PROJECT == "$PROJECT" ]] && APIS+=(cloudtasks.googleapis.com)
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
    if [[ -z $versions ]]; then
      add_version "$name" "$project" "$variable"
    else
      latest_is_blank "$name" "$project" && latest=blank || latest=$?
      case "$latest" in
        blank)
          warn "secret $name: its latest version is empty or only whitespace, which anyone" \
            "could sign with: storing a new value"
          add_version "$name" "$project" "$variable" ;;
        1) printf 'exists\n' ;;
        *)
          printf 'exists\n'
          warn "secret $name: could not read its latest version to check it is not empty" \
            "(that needs secretmanager.versions.access on it); left as it is" ;;
      esac
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

if [[ -n $QUEUE_PATH ]]; then
  step "Cloud Tasks queue $QUEUE_PATH: status checks every ${POLL_SECONDS}s, as $TASKS_SA"
  if [[ $QUEUE_PROJECT != "$PROJECT" ]]; then
    run gcloud services enable cloudtasks.googleapis.com "--project=$QUEUE_PROJECT" --quiet
  fi
  queue_flags=("--location=$QUEUE_LOCATION" "--project=$QUEUE_PROJECT")
  if exists gcloud tasks queues describe "$QUEUE" "${queue_flags[@]}"; then
    printf 'queue exists (left as it is: deploy.sh sets retries only on a queue it creates)\n'
  else
    create "the queue" gcloud tasks queues create "$QUEUE" "${queue_flags[@]}" \
      "${RETRY_FLAGS[@]}" --quiet
  fi
  if [[ $TASKS_SA == "$SA_EMAIL" ]]; then
    printf "the tasks' tokens are for the function's own account\n"
  elif [[ $TASKS_SA == *"@$PROJECT.iam.gserviceaccount.com" ]]; then
    if exists gcloud iam service-accounts describe "$TASKS_SA" "--project=$PROJECT"; then
      printf 'service account %s exists\n' "$TASKS_SA"
    else
      create "service account $TASKS_SA" gcloud iam service-accounts create "${TASKS_SA%%@*}" \
        "--project=$PROJECT" "--display-name=Revyl relay status checks" --quiet
    fi
  elif [[ $DRY_RUN == 1 ]]; then
    printf '+ %s   # must exist: deploy.sh creates accounts of %s only\n' \
      "$(quoted gcloud iam service-accounts describe "$TASKS_SA")" "$PROJECT"
  elif ! exists gcloud iam service-accounts describe "$TASKS_SA"; then
    die "service account $TASKS_SA (verdicts.cloud_tasks.service_account) not found: it is" \
      "not of project $PROJECT, so deploy.sh does not create it; create it, or name an" \
      "account of $PROJECT"
  fi
  quietly gcloud tasks queues add-iam-policy-binding "$QUEUE" "${queue_flags[@]}" \
    "--member=$MEMBER" --role=roles/cloudtasks.enqueuer --quiet
  # Creating a task whose OIDC token is for TASKS_SA needs actAs on it (also on itself).
  quietly gcloud iam service-accounts add-iam-policy-binding "$TASKS_SA" "--project=$PROJECT" \
    "--member=$MEMBER" --role=roles/iam.serviceAccountUser --condition=None --quiet
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

describe=(gcloud functions describe "$FUNCTION" "--region=$REGION" "--project=$PROJECT")
if [[ $DRY_RUN == 1 ]]; then
  run "${describe[@]}" '--format=value(serviceConfig.uri)'
  URI="https://<function URL>"
else
  URI="$("${describe[@]}" '--format=value(serviceConfig.uri)')"
  [[ -n $URI ]] || die "the function has no URL yet: gcloud functions describe $FUNCTION"
fi

# The tasks' URL is in the uploaded config, and the function's is known once it exists.
TASKS_URL_WRONG=0
if [[ -n $QUEUE_PATH ]]; then
  if [[ $DRY_RUN == 1 ]]; then
    TASKS_URL_SAYS="checked after the deploy: it must be the function URL"
  elif [[ $TASKS_URL == "$URI" ]]; then
    TASKS_URL_SAYS="the function URL"
  elif [[ $TASKS_URL == "$("${describe[@]}" '--format=value(url)' 2> /dev/null || true)" ]]; then
    TASKS_URL_SAYS="the function's cloudfunctions.net URL; that a path after it reaches the"
    TASKS_URL_SAYS+=" relay is not verified: prefer the URL above"
  else
    TASKS_URL_WRONG=1
    TASKS_URL_SAYS="NOT the function URL (see below)"
  fi
fi

printf '\nfunction URL  %s   (check: curl %s/healthz)\n' "$URI" "$URI"
if [[ -n $QUEUE_PATH ]]; then
  printf 'status checks %s   (verdicts.cloud_tasks.url: %s)\n' "$TASKS_URL" "$TASKS_URL_SAYS"
fi
printf '\npaste into each build system:\n'
while IFS=$'\t' read -r kind name _ hint; do
  [[ $kind == source ]] || continue
  printf '  %-10s %s\n' "$name" "$URI/$name"
  printf '  %-10s %s\n' "" "${hint//\{url\}/$URI/$name}"
done <<< "$INFO"
if [[ $CPU_ALWAYS != 1 ]] && awk -F'\t' '$1 == "source" && $3 == "slack" { found = 1 }
    END { exit !found }' <<< "$INFO"; then
  printf '\nnote: a Slack source posts late answers after the response; for that the function\n'
  printf '      needs CPU always allocated: deploy with --cpu-always (docs/slack.md)\n'
fi
if [[ $(field dry-run 2) == yes ]]; then
  printf '\nnote: the config has no revyl.token: the relay verifies and routes, starts nothing\n'
fi
if [[ $(field store 2) == memory ]]; then
  printf '\nnote: dedup.store memory: a redelivery to another instance starts its runs twice\n'
fi
if [[ $TASKS_URL_WRONG == 1 ]]; then
  {
    printf 'deploy.sh: verdicts.cloud_tasks.url is not the URL of function %s:\n' "$FUNCTION"
    printf '  config    %s   (%s)\n  function  %s\n' "$TASKS_URL" "$CONFIG_PATH" "$URI"
    printf 'The function is deployed, but it would send its status checks elsewhere and report\n'
    printf 'no verdict (a first deploy learns the URL only now). Set url: %s\n' "$URI"
    printf 'under verdicts.cloud_tasks in %s, then run deploy.sh again.\n' "$CONFIG_PATH"
  } >&2
  exit 3
fi
