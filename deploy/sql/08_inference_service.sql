-- Step 8: the gateway service INFERENCE_SERVICE (gateway + persistence worker + Prometheus
-- sidecar), created by the service role so that the containers' session has its privileges.
--
-- Before this step deploy.sh pushes the images to the repository and uploads
-- spcs/inference_service.yaml to the spec stage. The spec is a template: every {{ name }} in
-- it gets its value from the USING clause below. ops/rollout_inference_service.sql applies a
-- changed spec or image tag to a running service with the same USING clause.
--
-- The spec maps the secret <database>.SPCS.GATEWAY_API_TOKEN (step 7) into the gateway's
-- GATEWAY_API_TOKEN, the /v1 bearer token, and CREATE SERVICE fails unless the creating role may
-- read that secret. The grant is here rather than in step 7 because deploy.sh runs step 7 only
-- while the secret does not exist, and this step runs on every deployment.
-- NOTE: READ follows public SPCS examples and has not run against an account. If CREATE SERVICE
-- reports that the secret does not exist or is not authorized, grant USAGE on it as well.
USE ROLE <% ctx.env.admin_role %>;
GRANT READ ON SECRET <% ctx.env.database_name %>.SPCS.GATEWAY_API_TOKEN
  TO ROLE <% ctx.env.service_role %>;

USE ROLE <% ctx.env.service_role %>;

CREATE SERVICE IF NOT EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %>
  IN COMPUTE POOL <% ctx.env.compute_pool %>
  FROM @<% ctx.env.database_name %>.SPCS.<% ctx.env.spec_stage %>
  SPECIFICATION_TEMPLATE_FILE = 'inference_service.yaml'
  USING (
    gateway_image => '<% ctx.env.image_repository_path %>/evidence-gateway:<% ctx.env.image_tag %>',
    worker_image => '<% ctx.env.image_repository_path %>/evidence-worker:<% ctx.env.image_tag %>',
    model_service_url => 'http://<% ctx.env.model_service_dns %>:<% ctx.env.model_service_port %>',
    model_version => '<% ctx.env.model_version %>',
    model_feature_spec_hash => '<% ctx.env.model_feature_spec_hash %>',
    database_name => '<% ctx.env.database_name %>',
    warehouse_name => '<% ctx.env.warehouse_name %>',
    store_raw_evidence => '<% ctx.env.store_raw_evidence %>'
  )
  AUTO_RESUME = TRUE
  MIN_INSTANCES = <% ctx.env.inference_min_instances %>
  MIN_READY_INSTANCES = <% ctx.env.inference_min_instances %>
  MAX_INSTANCES = <% ctx.env.inference_max_instances %>
  QUERY_WAREHOUSE = <% ctx.env.warehouse_name %>
  COMMENT = 'Evidence risk gateway: FN_API_PREDICT, FN_HEALTH and the JSON API';

-- CREATE ... IF NOT EXISTS leaves an existing service untouched; this applies changed instance
-- counts on a re-run. Between MIN and MAX instances SPCS scales on CPU load.
ALTER SERVICE IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %> SET
  MIN_INSTANCES = <% ctx.env.inference_min_instances %>
  MIN_READY_INSTANCES = <% ctx.env.inference_min_instances %>
  MAX_INSTANCES = <% ctx.env.inference_max_instances %>
  QUERY_WAREHOUSE = <% ctx.env.warehouse_name %>;

-- Blocks for up to 600 seconds. Expected: gateway, worker, metrics-gateway and metrics-worker
-- all READY.
USE WAREHOUSE <% ctx.env.warehouse_name %>;
SELECT
  c.value:containerName::STRING AS container_name,
  c.value:status::STRING AS status,
  c.value:message::STRING AS message
FROM TABLE(FLATTEN(INPUT => PARSE_JSON(SYSTEM$GET_SERVICE_STATUS(
  '<% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %>',
  600)))) AS c;
