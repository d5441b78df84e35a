#!/usr/bin/env bash
# Deploy the evidence risk pipeline to a Snowflake account, step by step, with the Snowflake CLI.
#
# Usage: deploy/deploy.sh [-c CONNECTION] COMMAND
#
# Commands, in the order `all` runs them (docs/deploy.md explains each step):
#   account     sql/01  roles and account privileges (needs ACCOUNTADMIN)
#   database    sql/02-05  warehouse, database, schemas, hybrid tables, pool, repository, grants
#   images      build the gateway and worker images for linux/amd64 and push them
#   spec        upload spcs/inference_service.yaml to the spec stage
#   register    log the trained artifact (var/model, or $model_artifact_dir) in the Model
#               Registry and create RISK_MODEL_SVC with evidence-train; skipped when the
#               service exists
#   model       sql/06  wait for RISK_MODEL_SVC and read its DNS name
#   service     sql/07  create INFERENCE_SERVICE and wait until it is READY
#   functions   sql/08  FN_API_PREDICT and FN_HEALTH
#   streamlit   bundle and upload deploy/streamlit/, create ML_PIPELINE_MONITOR (sql/09)
#   smoke       sql/10  smoke test; fails unless every OK_* column is TRUE
#   all         every step above, in order
# Operations:
#   rollout     images + spec + ops/rollout_inference_service.sql (new tag, spec or model host)
#   suspend     ops/suspend.sql: stop the services, pool and warehouse (stops the costs)
#   resume      ops/resume.sql
#   teardown    ops/teardown.sql: drop everything (asks for confirmation)
#
# Values come from deploy/snowflake.yml; export a variable of the same name to override one,
# e.g. `image_tag=0.2.0 deploy/deploy.sh rollout`. Needs: snow (Snowflake CLI 3.x), docker with
# buildx for `images`, python3.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$DEPLOY_DIR")"
CONNECTION="${SNOWFLAKE_CONNECTION:-default}"

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
    local stage="@$(setting database_name).SPCS.$(setting spec_stage)"
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
    local database service status_json dns
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
    export model_service_dns="$dns"
    log "model service host: $model_service_dns"
}

step_service() {
    if [[ -z "${model_service_dns:-}" ]]; then
        step_model
    fi
    run_sql_file sql/07_inference_service.sql
}

step_functions() { run_sql_file sql/08_service_functions.sql; }

step_streamlit() {
    local source="$DEPLOY_DIR/streamlit"
    local stage="@$(setting database_name).STREAMLIT_APP.$(setting streamlit_stage)"
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
    run_sql_file sql/09_streamlit.sql
}

step_smoke() {
    log "smoke test"
    (cd "$DEPLOY_DIR" && snow sql -c "$CONNECTION" --format json -f sql/10_smoke_test.sql) \
        | assert_ok_columns
}

step_rollout() {
    step_images
    step_spec
    if [[ -z "${model_service_dns:-}" ]]; then
        step_model
    fi
    run_sql_file sql/ops/rollout_inference_service.sql
}

step_teardown() {
    local database
    database="$(setting database_name)"
    read -r -p "Drop $database, its services, pool, warehouse and roles? Type the database name: " answer
    if [[ "$answer" != "$database" ]]; then
        echo "deploy.sh: teardown cancelled" >&2
        exit 1
    fi
    run_sql_file sql/ops/teardown.sql
}

main() {
    while getopts ":c:h" option; do
        case "$option" in
            c) CONNECTION="$OPTARG" ;;
            h) usage; exit 0 ;;
            *) usage >&2; exit 2 ;;
        esac
    done
    shift $((OPTIND - 1))
    local command="${1:-}"
    case "$command" in
        account) step_account ;;
        database) step_database ;;
        images) step_images ;;
        spec) step_spec ;;
        register) step_register ;;
        model) step_model ;;
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
            step_service
            step_functions
            step_streamlit
            step_smoke
            ;;
        rollout) step_rollout ;;
        suspend) run_sql_file sql/ops/suspend.sql ;;
        resume) run_sql_file sql/ops/resume.sql ;;
        teardown) step_teardown ;;
        *) usage >&2; exit 2 ;;
    esac
}

main "$@"
