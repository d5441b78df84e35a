#!/usr/bin/env bash
# Deploy the evidence risk pipeline to a Snowflake account, step by step, with the Snowflake CLI.
#
# Usage: deploy/deploy.sh [-c CONNECTION] COMMAND
#        deploy/deploy.sh -h | --help
#
# Commands, in the order `all` runs them (docs/deploy.md explains each step):
#   account     sql/01  roles and account privileges (needs ACCOUNTADMIN)
#   database    sql/02-05  warehouse, database, schemas, hybrid tables, pool, repository, grants
#   images      build the gateway and worker images for linux/amd64 and push them
#   spec        upload spcs/inference_service.yaml to the spec stage
#   register    log the trained artifact (var/model, or $model_artifact_dir) in the Model
#               Registry and create RISK_MODEL_SVC with evidence-train; skipped when the
#               service exists
#   model       sql/06  wait for RISK_MODEL_SVC and read its DNS name and port
#   secret      sql/07  create the secret SPCS.GATEWAY_API_TOKEN (the /v1 bearer token) unless
#               it exists; see "The /v1 token" below
#   service     sql/08  let the service role read the secret, create INFERENCE_SERVICE and
#               wait until it is READY
#   functions   sql/09  FN_API_PREDICT and FN_HEALTH
#   streamlit   bundle and upload deploy/streamlit/, create ML_PIPELINE_MONITOR (sql/10)
#   smoke       sql/11  smoke test; fails unless every OK_* column is TRUE
#   all         every step above, in order
# Operations:
#   rollout       images + spec + ops/rollout_inference_service.sql (new tag, spec or model host)
#   rotate-token  ops/rotate_gateway_token.sql: replace the /v1 token; restart the service after
#   suspend       ops/suspend.sql: stop the services, pool and warehouse (stops the costs)
#   resume        ops/resume.sql
#   teardown      ops/teardown_stop_traffic.sql, wait for the queue to drain, then
#                 ops/teardown.sql: drop everything (requests confirmation twice)
#
# Teardown reads its two confirmations from stdin and shows the questions on stderr. It exits
# with status 3 when it is cancelled, that is when an input does not match or stdin ends first.
# In CI, set TEARDOWN_CONFIRM_DATABASE to the database name in place of both inputs. It then
# also exits with status 3, before the drop, when the queue did not drain in time.
#
# The /v1 token: `secret` and `rotate-token` store the value of the environment variable
# GATEWAY_API_TOKEN when it is set (32 or more characters of A-Z a-z 0-9 - . _ ~ + /, then
# optional '=' padding), and print nothing. Otherwise they generate a random token and show it
# once, on the terminal (/dev/tty) only, never on stdout or stderr. Without a terminal they
# stop and ask for GATEWAY_API_TOKEN. The token reaches snow in its environment only.
#
# Values come from deploy/snowflake.yml; export a variable of the same name to override one,
# e.g. `image_tag=0.2.0 deploy/deploy.sh rollout`. Needs: snow (Snowflake CLI 3.x), docker with
# buildx for `images`, python3.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$DEPLOY_DIR")"
CONNECTION="${SNOWFLAKE_CONNECTION:-default}"

# The secret that the spec maps into the gateway container's GATEWAY_API_TOKEN.
SECRET_NAME=GATEWAY_API_TOKEN
# The operator's /v1 token, when given. It leaves the environment here, so that only the one snow
# call that stores it receives it, and docker, evidence-train and other snow calls do not.
SUPPLIED_TOKEN="${GATEWAY_API_TOKEN:-}"
unset GATEWAY_API_TOKEN
# A bearer token as RFC 6750 defines it (b64token), at least 32 characters long. The character
# set also keeps the value from ending the quoted SQL string it is placed in.
TOKEN_PATTERN='^[A-Za-z0-9._~+/-]{32,}=*$'
# Set by resolve_token: the token to store, and whether deploy.sh generated it.
TOKEN=""
TOKEN_GENERATED=""
# Set once step_secret has run, so `all` does not check the secret twice.
SECRET_READY=""
# The format of evidence_features.FEATURE_SPEC_HASH: the first 16 hex digits of a SHA-256. The
# check also keeps a value read from Snowflake from ending the SQL string or YAML it goes into.
SPEC_HASH_PATTERN='^[0-9a-f]{16}$'
# Exit status of a teardown that was cancelled at a question.
EXIT_CANCELLED=3

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

# Print the value of an env key in snowflake.yml, unless the shell already defines it.
setting() {
    local name="$1"
    if [[ -n "${!name:-}" ]]; then
        printf '%s\n' "${!name}"
        return
    fi
    awk -v key="$name" '
        $1 == key":" { sub(/^[^:]*:[ \t]*/, ""); gsub(/^"|"$/, ""); print; found = 1; exit }
        END { if (!found) exit 1 }
    ' "$DEPLOY_DIR/snowflake.yml" || {
        echo "deploy.sh: setting '$name' is missing from deploy/snowflake.yml" >&2
        exit 2
    }
}

log() { printf '\n==> %s\n' "$*"; }

# Exit before the first step when the Snowflake CLI is missing. Otherwise the first snow call
# fails with "snow: command not found", and a step that reads a query's result in an `if`
# (secret_exists) reports that as a failed query instead.
require_snow() {
    if ! command -v snow >/dev/null 2>&1; then
        echo "deploy.sh: the Snowflake CLI (snow) was not found on PATH; install Snowflake" \
            "CLI 3.x with 'pip install snowflake-cli' (see docs/deploy.md, Prerequisites)" >&2
        exit 1
    fi
}

# images, all and rollout build and push images, so they check for docker before any step
# rather than stop halfway, after the account and database steps have already run.
require_docker() {
    if ! command -v docker >/dev/null 2>&1; then
        echo "deploy.sh: docker was not found on PATH; install Docker with buildx to build" \
            "the images (see docs/deploy.md, Prerequisites)" >&2
        exit 1
    fi
}

# Print an error and the usage on stderr, then exit with status 2.
usage_error() {
    echo "deploy.sh: $1" >&2
    usage >&2
    exit 2
}

run_sql_file() {
    log "snow sql -f $1"
    (cd "$DEPLOY_DIR" && snow sql -c "$CONNECTION" -f "$1")
}

# Run one query and print its result as JSON.
query_json() {
    (cd "$DEPLOY_DIR" && snow sql -c "$CONNECTION" --format json -q "$1")
}

# Read JSON results on stdin and fail unless every column named OK_* in every row is true.
assert_ok_columns() { python3 "$DEPLOY_DIR/snow_json.py" ok-columns; }

step_account() { run_sql_file sql/01_account_setup.sql; }

step_database() {
    run_sql_file sql/02_database.sql
    run_sql_file sql/03_hybrid_tables.sql
    run_sql_file sql/04_compute_pool_and_repository.sql
    run_sql_file sql/05_grants.sql
}

step_images() {
    local database tag repository_url
    database="$(setting database_name)"
    tag="$(setting image_tag)"
    log "docker login to the account's image registry"
    snow spcs image-registry login -c "$CONNECTION"
    repository_url="$(snow spcs image-repository url "$(setting image_repository)" \
        -c "$CONNECTION" --database "$database" --schema SPCS)"
    # Only the gateway and the worker run in SPCS as images of ours. The model runs in the Model
    # Registry's inference service, and the dashboard in Streamlit in Snowflake.
    local image dockerfile
    for image in gateway worker; do
        dockerfile="$DEPLOY_DIR/docker/$image.Dockerfile"
        log "build and push $repository_url/evidence-$image:$tag"
        docker build --platform linux/amd64 -f "$dockerfile" \
            -t "$repository_url/evidence-$image:$tag" "$REPO_ROOT"
        docker push "$repository_url/evidence-$image:$tag"
    done
}

step_spec() {
    local stage
    stage="@$(setting database_name).SPCS.$(setting spec_stage)"
    log "upload spcs/inference_service.yaml to $stage"
    (cd "$DEPLOY_DIR" && snow stage copy spcs/inference_service.yaml "$stage" \
        -c "$CONNECTION" --overwrite)
}

# Print the services named like the model service as JSON rows, or [] when there is none.
model_service_rows() {
    query_json "SHOW SERVICES LIKE '$(setting model_service)' IN SCHEMA $(setting database_name).ML_MODELS"
}

step_register() {
    local rows artifact trainer
    rows="$(model_service_rows)"
    if printf '%s' "$rows" | grep -q '"dns_name"'; then
        log "$(setting model_service) exists; not registering (see docs/deploy.md for a new version)"
        return
    fi
    artifact="${model_artifact_dir:-$REPO_ROOT/var/model}"
    if [[ ! -f "$artifact/metadata.json" ]]; then
        echo "deploy.sh: no model artifact found in $artifact. Train one first:" >&2
        echo "  evidence-train --synthetic 20000 --out var/model --version $(setting model_version)" >&2
        exit 1
    fi
    trainer="$REPO_ROOT/.venv/bin/evidence-train"
    [[ -x "$trainer" ]] || trainer="evidence-train"
    log "register $(setting model_name) $(setting model_version) and create $(setting model_service)"
    # The connection's role becomes the owner of the model and the service: use the admin role.
    "$trainer" register \
        --artifact "$artifact" \
        --connection "$CONNECTION" \
        --database "$(setting database_name)" \
        --schema ML_MODELS \
        --version "$(setting model_version)" \
        --compute-pool "$(setting compute_pool)" \
        --image-repo "$(setting database_name).SPCS.$(setting image_repository)" \
        --service-name "$(setting model_service)"
}

step_model() {
    run_sql_file sql/06_model_service.sql
    local database service status_json dns port spec_hash
    database="$(setting database_name)"
    service="$(setting model_service)"
    status_json="$(query_json "SELECT c.value:status::STRING = 'READY' AS ok_ready
        FROM TABLE(FLATTEN(INPUT => PARSE_JSON(SYSTEM\$GET_SERVICE_STATUS(
        '$database.ML_MODELS.$service')))) AS c")"
    printf '%s' "$status_json" | assert_ok_columns || {
        echo "deploy.sh: $service is not READY. See docs/deploy.md, Troubleshooting." >&2
        exit 1
    }
    dns="$(model_service_rows | python3 "$DEPLOY_DIR/snow_json.py" dns-name)"
    # The Model Registry names the endpoint `inference` and does not document its port.
    port="$(query_json "SHOW ENDPOINTS IN SERVICE $database.ML_MODELS.$service" \
        | python3 "$DEPLOY_DIR/snow_json.py" endpoint-port inference)"
    # The Registry's inference server has no /health, so the gateway learns the served
    # model's feature spec hash only from the hash that registration recorded on the version.
    spec_hash="$(read_spec_hash)"
    export model_service_dns="$dns" model_service_port="$port" \
        model_feature_spec_hash="$spec_hash"
    log "model service host: $model_service_dns, port $model_service_port," \
        "feature spec hash $model_feature_spec_hash"
}

# Print the feature spec hash that `evidence-train register` recorded on model_version. Exits
# with a fix that names the model and version when there is not exactly one valid hash.
read_spec_hash() {
    local model version spec_hash
    model="$(setting database_name).ML_MODELS.$(setting model_name)"
    version="$(setting model_version)"
    if spec_hash="$(query_json "SHOW VERSIONS LIKE '$version' IN MODEL $model" \
        | python3 "$DEPLOY_DIR/snow_json.py" spec-hash)"; then
        printf '%s\n' "$spec_hash"
        return
    fi
    echo "deploy.sh: version $version of model $model records no valid feature spec hash," \
        "so the gateway cannot check that it serves this feature spec. A version cannot be" \
        "registered twice: register the artifact as a new version with its own service, then" \
        "run this command again with the same two variables:" \
        "model_version=<new version, such as V3> model_service=<new service, such as" \
        "RISK_MODEL_SVC_V3> deploy/deploy.sh register (see docs/deploy.md, Rolling out a new" \
        "model version)" >&2
    exit 1
}

# Exit unless model_feature_spec_hash has the format of a real hash. A hand-run step that did
# not export it would otherwise give the gateway the placeholder of snowflake.yml.
require_spec_hash_format() {
    local spec_hash
    spec_hash="$(setting model_feature_spec_hash)"
    if [[ ! "$spec_hash" =~ $SPEC_HASH_PATTERN ]]; then
        echo "deploy.sh: model_feature_spec_hash is '$spec_hash', not a feature spec hash (16" \
            "lowercase hex digits). Run deploy.sh model, or export the hash that SHOW VERSIONS" \
            "records on the model version (see docs/deploy.md)" >&2
        exit 2
    fi
}

# Succeed when step_model has exported everything the gateway service's USING clause reads.
model_known() {
    [[ -n "${model_service_dns:-}" && -n "${model_service_port:-}" \
        && -n "${model_feature_spec_hash:-}" ]]
}

# Print the secrets named like the /v1 token secret as JSON rows, or [] when there is none.
secret_rows() {
    query_json "SHOW SECRETS LIKE '$SECRET_NAME' IN SCHEMA $(setting database_name).SPCS"
}

# Succeed when the secret exists. A failed query exits, because callers test this in an `if`,
# where set -e does not apply, and would read the failure as "does not exist".
secret_exists() {
    local rows
    rows="$(secret_rows)" || {
        echo "deploy.sh: SHOW SECRETS in $(setting database_name).SPCS failed" >&2
        exit 1
    }
    [[ "$rows" == *'"name"'* ]]
}

# Succeed when this process has a terminal to show a generated token on.
terminal_available() { (: >/dev/tty) 2>/dev/null; }

# Set TOKEN to the operator's GATEWAY_API_TOKEN, or to a new random token (TOKEN_GENERATED=1).
# Exits before anything is stored when the given token is invalid, or when a generated token
# could not be shown. Never prints the value.
resolve_token() {
    if [[ -n "$SUPPLIED_TOKEN" ]]; then
        if [[ ! "$SUPPLIED_TOKEN" =~ $TOKEN_PATTERN ]]; then
            echo "deploy.sh: GATEWAY_API_TOKEN is invalid: use 32 or more characters of" \
                "A-Z a-z 0-9 - . _ ~ + / (optionally followed by '='), for example the output of" \
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'" >&2
            exit 2
        fi
        TOKEN="$SUPPLIED_TOKEN"
        TOKEN_GENERATED=""
        return
    fi
    if ! terminal_available; then
        echo "deploy.sh: GATEWAY_API_TOKEN is not set and there is no terminal to show a" \
            "generated token on. Set GATEWAY_API_TOKEN to the token from your secret store" \
            "and run again." >&2
        exit 1
    fi
    TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
    TOKEN_GENERATED=1
}

# Run a SQL file that reads the token as ctx.env.GATEWAY_API_TOKEN. The token reaches snow in its
# environment only, never in its arguments (which ps shows to every user) or in a file. snow's
# stdout is discarded, because the statement contains the token and some Snowflake CLI releases
# print each statement above its result. Errors still reach stderr.
run_sql_file_with_token() {
    log "snow sql -f $1 (token passed in the environment)"
    (cd "$DEPLOY_DIR" && GATEWAY_API_TOKEN="$TOKEN" snow sql -c "$CONNECTION" -f "$1" >/dev/null)
}

# Show a generated token once, on the terminal only: stdout and stderr may go to a log file.
show_token_on_terminal() {
    {
        printf '\n!!! Bearer token of the gateway /v1 API (%s.SPCS.%s):\n\n' \
            "$(setting database_name)" "$SECRET_NAME"
        printf '    %s\n\n' "$TOKEN"
        printf '!!! Store it in your secret store now and give it to /v1 clients from there.\n'
        printf '!!! Snowflake never shows a secret value again; a lost token can only be\n'
        printf '!!! replaced, with deploy.sh rotate-token.\n\n'
    } >/dev/tty
}

step_secret() {
    # xtrace (bash -x) would print the token, so it stays off from here on.
    { set +x; } 2>/dev/null
    local secret
    secret="$(setting database_name).SPCS.$SECRET_NAME"
    SECRET_READY=1
    if secret_exists; then
        log "$secret exists; its value is unchanged (deploy.sh rotate-token replaces it)"
        if [[ -n "$SUPPLIED_TOKEN" ]]; then
            echo "deploy.sh: GATEWAY_API_TOKEN was not stored because $secret exists;" \
                "run deploy.sh rotate-token to store it" >&2
        fi
        return
    fi
    resolve_token
    run_sql_file_with_token sql/07_gateway_secret.sql
    if [[ -n "$TOKEN_GENERATED" ]]; then
        show_token_on_terminal
        log "created $secret with a generated token, shown on the terminal only"
    else
        log "created $secret with the value of GATEWAY_API_TOKEN"
    fi
    TOKEN=""
}

step_service() {
    if ! model_known; then
        step_model
    fi
    if [[ -z "$SECRET_READY" ]]; then
        step_secret
    fi
    require_spec_hash_format
    run_sql_file sql/08_inference_service.sql
}

step_functions() { run_sql_file sql/09_service_functions.sql; }

step_streamlit() {
    local source="$DEPLOY_DIR/streamlit"
    local stage
    stage="@$(setting database_name).STREAMLIT_APP.$(setting streamlit_stage)"
    local file
    if [[ ! -f "$source/$(setting streamlit_main_file)" ]]; then
        echo "deploy.sh: $source/$(setting streamlit_main_file) not found" >&2
        exit 1
    fi
    # Streamlit in Snowflake installs packages from Snowflake's Anaconda channel only, so
    # bundle.py copies the dashboard and feature sources (and the model's metadata.json, read by
    # the drift panel) next to the app before the upload.
    log "bundle the dashboard sources into $source"
    python3 "$source/bundle.py" --artifact-dir "${model_artifact_dir:-$REPO_ROOT/var/model}"
    log "upload $source to $stage"
    for file in "$(setting streamlit_main_file)" environment.yml; do
        snow stage copy "$source/$file" "$stage" -c "$CONNECTION" --overwrite
    done
    snow stage copy "$source/lib" "$stage/lib" -c "$CONNECTION" --recursive --overwrite
    if [[ -d "$source/model" ]]; then
        snow stage copy "$source/model" "$stage/model" -c "$CONNECTION" --recursive --overwrite
    fi
    run_sql_file sql/10_streamlit.sql
}

step_smoke() {
    log "smoke test"
    (cd "$DEPLOY_DIR" && snow sql -c "$CONNECTION" --format json -f sql/11_smoke_test.sql) \
        | assert_ok_columns
}

step_rollout() {
    # The model step reads and checks the spec hash first, so a version without one stops the
    # rollout before any image is pushed or the spec on the stage is replaced.
    if ! model_known; then
        step_model
    fi
    require_spec_hash_format
    step_images
    step_spec
    run_sql_file sql/ops/rollout_inference_service.sql
}

step_rotate_token() {
    # xtrace (bash -x) would print the token, so it stays off from here on.
    { set +x; } 2>/dev/null
    local database secret service
    database="$(setting database_name)"
    secret="$database.SPCS.$SECRET_NAME"
    service="$database.ML_MODELS.$(setting inference_service)"
    if ! secret_exists; then
        echo "deploy.sh: $secret does not exist; create it with deploy.sh secret" >&2
        exit 1
    fi
    resolve_token
    run_sql_file_with_token sql/ops/rotate_gateway_token.sql
    if [[ -n "$TOKEN_GENERATED" ]]; then
        show_token_on_terminal
    fi
    TOKEN=""
    log "stored a new value in $secret"
    # SPCS sets the variable when a container starts, and the gateway reads it once at start.
    cat <<EOF
The running gateway still accepts the old token, and only the old one, until its containers
restart. Restart them when the /v1 clients have the new token (FN_API_PREDICT and FN_HEALTH
fail until the service is READY again, a few minutes):
  snow sql -c $CONNECTION -q "ALTER SERVICE $service SUSPEND"
  snow sql -c $CONNECTION -q "ALTER SERVICE $service RESUME"
EOF
}

# Print the number of rows in ML_MODELS.MODEL_PREDICTIONS, which the persistence worker grows
# while it drains the queue. Exits when the count cannot be read, because a teardown that cannot
# read the count cannot tell a drained queue from a full one.
stored_prediction_count() {
    local table count
    table="$(setting database_name).ML_MODELS.MODEL_PREDICTIONS"
    if count="$(query_json "USE ROLE $(setting admin_role); USE WAREHOUSE $(setting warehouse_name);
        SELECT COUNT(*) AS ROWS_STORED FROM $table" \
        | python3 "$DEPLOY_DIR/snow_json.py" value ROWS_STORED)" && [[ "$count" =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$count"
        return
    fi
    echo "deploy.sh: counting the rows of $table failed (the error is above), so the drain" \
        "of the queue cannot be watched. The service and its queue volumes were not dropped." \
        "Fix the cause (the admin role, warehouse or table) and run deploy.sh teardown again" >&2
    exit 1
}

# Print a drain setting after checking that it is a whole number of seconds.
drain_setting() {
    local name="$1" value
    value="$(setting "$name")"
    if [[ ! "$value" =~ ^[0-9]+$ ]]; then
        echo "deploy.sh: invalid $name '$value'. Set it to a whole number of seconds, such as" \
            "$name=120" >&2
        exit 2
    fi
    printf '%s\n' "$value"
}

# Exit before anything runs when a drain setting is not a whole number of seconds. Bash
# arithmetic would otherwise read a value such as 2m as a variable name, that is as 0.
check_drain_settings() {
    local name
    for name in teardown_drain_quiet_secs teardown_drain_poll_secs teardown_drain_timeout_secs; do
        drain_setting "$name" >/dev/null
    done
}

# Wait until the prediction log has stopped growing for teardown_drain_quiet_secs. Succeeds
# then, and fails after teardown_drain_timeout_secs while it still grows. A count that cannot
# be read exits (stored_prediction_count).
# NOTE: a count that stops growing is the only drain signal deploy.sh reads. A worker whose
# writes fail for longer than the quiet time (for example after a revoked grant) also stops
# it while records are still queued. Its log and evidence_persistence_queue_depth show that.
wait_for_drain() {
    local quiet poll timeout started stable_since previous current
    quiet="$(drain_setting teardown_drain_quiet_secs)" || exit 2
    poll="$(drain_setting teardown_drain_poll_secs)" || exit 2
    timeout="$(drain_setting teardown_drain_timeout_secs)" || exit 2
    log "wait until MODEL_PREDICTIONS has not grown for ${quiet}s (at most ${timeout}s)"
    started=$SECONDS
    stable_since=$SECONDS
    previous="$1"
    while true; do
        # The function's exit ends only the command substitution, and this function runs
        # where set -e does not apply (wait_for_drain || ...), so the failure exits here.
        current="$(stored_prediction_count)" || {
            echo "deploy.sh: the service functions were dropped. Run deploy.sh functions to" \
                "create them again" >&2
            exit 1
        }
        if [[ "$current" != "$previous" ]]; then
            previous="$current"
            stable_since=$SECONDS
        fi
        if (( SECONDS - stable_since >= quiet )); then
            log "MODEL_PREDICTIONS contains $current rows, unchanged for ${quiet}s: queue drained"
            return 0
        fi
        if (( SECONDS - started >= timeout )); then
            echo "deploy.sh: the queue drain timed out, because MODEL_PREDICTIONS still grew" \
                "after ${timeout}s ($current rows). The queue may still contain predictions" >&2
            return 1
        fi
        sleep "$poll"
    done
}

# Show a teardown question on stderr and read the confirmation from stdin. Exits with
# EXIT_CANCELLED, naming the expected input, when stdin ends first or the input differs.
# An input without a final newline counts.
confirm() {
    local question="$1" expected="$2" cancelled="$3" input=""
    # read -p shows its prompt only on a terminal, so the question goes to stderr itself.
    printf '%s' "$question" >&2
    if ! IFS= read -r input && [[ -z "$input" ]]; then
        echo >&2
        echo "deploy.sh: missing input, because stdin ended before '$expected' was typed." \
            "$cancelled" >&2
        exit "$EXIT_CANCELLED"
    fi
    if [[ "$input" != "$expected" ]]; then
        echo "deploy.sh: invalid input '$input', expected '$expected'. $cancelled" >&2
        exit "$EXIT_CANCELLED"
    fi
}

# Exit unless the gateway service runs, because only a running worker drains its queue.
# AUTO_RESUME wakes a suspended service only on a function call or an ingress request, so once
# the functions are dropped its count could stay flat and read as drained. A missing service has
# no queue to drain.
require_service_running() {
    local service="$1" rows status
    rows="$(query_json "SHOW SERVICES LIKE '$(setting inference_service)' IN SCHEMA \
        $(setting database_name).ML_MODELS")" || {
        echo "deploy.sh: SHOW SERVICES for $service failed (the error is above). Nothing was" \
            "dropped" >&2
        exit 1
    }
    if [[ "$rows" != *'"name"'* ]]; then
        log "$service does not exist, so no queue is left to drain"
        return
    fi
    status="$(printf '%s' "$rows" | python3 "$DEPLOY_DIR/snow_json.py" value status)" || {
        echo "deploy.sh: SHOW SERVICES returned no single status for $service. Nothing was" \
            "dropped" >&2
        exit 1
    }
    if [[ "$status" != "RUNNING" ]]; then
        echo "deploy.sh: $service is $status, and only a running service drains its queue," \
            "so nothing was dropped. Run deploy.sh resume, wait until SHOW SERVICES shows it" \
            "RUNNING, then run deploy.sh teardown again. A service that cannot run loses its" \
            "queue. To drop it anyway, run sql/ops/teardown.sql with snow sql -f" >&2
        exit 1
    fi
}

step_teardown() {
    local database service drained first_count unattended=""
    check_drain_settings
    database="$(setting database_name)"
    service="$database.ML_MODELS.$(setting inference_service)"
    if [[ -n "${TEARDOWN_CONFIRM_DATABASE+set}" ]]; then
        if [[ "$TEARDOWN_CONFIRM_DATABASE" != "$database" ]]; then
            echo "deploy.sh: TEARDOWN_CONFIRM_DATABASE is '$TEARDOWN_CONFIRM_DATABASE', not" \
                "'$database'. Teardown cancelled, nothing was dropped" >&2
            exit "$EXIT_CANCELLED"
        fi
        unattended=1
        log "TEARDOWN_CONFIRM_DATABASE names $database: teardown without questions"
    else
        confirm "Drop $database, its services, pool, warehouse and roles? Type the database name: " \
            "$database" "Teardown cancelled, nothing was dropped."
    fi
    # Both checks come before the first drop, because a stopped worker or an unreadable count
    # would make a full queue look drained.
    require_service_running "$service"
    first_count="$(stored_prediction_count)" || exit 1
    # Each instance's queue lives on its block volume, and DROP SERVICE ... FORCE deletes the
    # volume with every prediction still queued on it (Snowflake docs, DROP SERVICE). New
    # batches stop first, then the worker gets time to write the rest.
    run_sql_file sql/ops/teardown_stop_traffic.sql
    local kept="Teardown cancelled after the service functions were dropped."
    kept+=" Run deploy.sh functions to create them again."
    drained=1
    wait_for_drain "$first_count" || drained=""
    if [[ -z "$drained" ]]; then
        echo "deploy.sh: dropping $service now deletes the predictions still queued on its" \
            "volumes. Check the worker's log, or cancel and run teardown again later" >&2
        if [[ -n "$unattended" ]]; then
            echo "deploy.sh: $kept" >&2
            exit "$EXIT_CANCELLED"
        fi
    fi
    if [[ -z "$unattended" ]]; then
        confirm "Drop $service and its queue volumes? Type DROP: " DROP "$kept"
    fi
    run_sql_file sql/ops/teardown.sql
}

main() {
    # getopts has no long options. The spec "-:" reads "--help" as option "-" with the
    # argument "help", and a lone "--" still ends the options.
    while getopts ":c:h-:" option; do
        case "$option" in
            c) CONNECTION="$OPTARG" ;;
            h) usage; exit 0 ;;
            -)
                case "$OPTARG" in
                    help) usage; exit 0 ;;
                    *) usage_error "unknown option '--$OPTARG'" ;;
                esac
                ;;
            :) usage_error "option -$OPTARG requires a value" ;;
            *) usage_error "unknown option '-$OPTARG'" ;;
        esac
    done
    shift $((OPTIND - 1))
    local command="${1:-}"
    case "$command" in
        account | database | images | spec | register | model | secret | service | functions \
            | streamlit | smoke | all | rollout | rotate-token | suspend | resume | teardown)
            ;;
        "") usage_error "missing command" ;;
        *) usage_error "unknown command '$command'" ;;
    esac
    # Every command runs snow.
    require_snow
    case "$command" in
        images | all | rollout) require_docker ;;
    esac
    case "$command" in
        account) step_account ;;
        database) step_database ;;
        images) step_images ;;
        spec) step_spec ;;
        register) step_register ;;
        model) step_model ;;
        secret) step_secret ;;
        service) step_service ;;
        functions) step_functions ;;
        streamlit) step_streamlit ;;
        smoke) step_smoke ;;
        all)
            step_account
            step_database
            step_images
            step_spec
            step_register
            step_model
            step_secret
            step_service
            step_functions
            step_streamlit
            step_smoke
            ;;
        rollout) step_rollout ;;
        rotate-token) step_rotate_token ;;
        suspend) run_sql_file sql/ops/suspend.sql ;;
        resume) run_sql_file sql/ops/resume.sql ;;
        teardown) step_teardown ;;
    esac
}

main "$@"
