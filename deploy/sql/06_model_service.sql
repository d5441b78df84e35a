-- Step 6: wait for the Model Registry inference service and let the gateway call it.
--
-- RISK_MODEL_SVC is created by training (`evidence-train ... --register`, which calls
-- ModelVersion.create_service on the admin role), not by this script. Run this step after it.
USE ROLE <% ctx.env.admin_role %>;
USE WAREHOUSE <% ctx.env.warehouse_name %>;

-- Expected: a row whose name is model_version (V2 by default) among the model's versions.
SHOW VERSIONS IN MODEL <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.model_name %>;

-- Blocks for up to model_service_wait_secs until the containers reach a steady state, then
-- returns one row per container. Expected: every STATUS is READY. PENDING after the wait means
-- the pool is still starting nodes (run again); FAILED means read the MESSAGE column and the
-- container logs (docs/deploy.md, "Troubleshooting").
-- NOTE: SYSTEM$GET_SERVICE_STATUS is deprecated in favour of SHOW SERVICE CONTAINERS, which
-- cannot wait. It is used here only for its timeout argument.
SELECT
  c.value:containerName::STRING AS container_name,
  c.value:status::STRING AS status,
  c.value:message::STRING AS message
FROM TABLE(FLATTEN(INPUT => PARSE_JSON(SYSTEM$GET_SERVICE_STATUS(
  '<% ctx.env.database_name %>.ML_MODELS.<% ctx.env.model_service %>',
  <% ctx.env.model_service_wait_secs %>)))) AS c;

-- dns_name is the host the gateway must call (<service>.<schema id>.svc.spcs.internal).
-- deploy.sh reads it from this result and passes it on as model_service_dns.
SHOW SERVICES LIKE '<% ctx.env.model_service %>' IN SCHEMA <% ctx.env.database_name %>.ML_MODELS;

-- The port of the endpoint named `inference` is the port the gateway must call. deploy.sh reads
-- it from this result and passes it on as model_service_port.
SHOW ENDPOINTS IN SERVICE <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.model_service %>;

-- Service-to-service calls need endpoint usage: the gateway runs as the service role.
GRANT SERVICE ROLE <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.model_service %>!ALL_ENDPOINTS_USAGE
  TO ROLE <% ctx.env.service_role %>;
