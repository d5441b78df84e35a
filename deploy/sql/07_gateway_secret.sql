-- Step 7: the generic-string secret SPCS.GATEWAY_API_TOKEN, the bearer token that /v1 clients
-- send to the gateway. The spec (spcs/inference_service.yaml) maps it into the gateway
-- container's GATEWAY_API_TOKEN, and the gateway does not start without that variable.
--
-- The value is never written to a file. deploy.sh passes it to snow in the environment variable
-- GATEWAY_API_TOKEN, and the template variable ctx.env.GATEWAY_API_TOKEN below reads it: the
-- Snowflake CLI looks a ctx.env name up in the process environment before snowflake.yml.
-- snowflake.yml has no entry for it, so a run without the variable fails instead of storing an
-- empty token.
--
-- deploy.sh runs this file only while the secret does not exist, so a re-run never replaces the
-- token that clients hold; `deploy.sh rotate-token` (ops/rotate_gateway_token.sql) does. The
-- service role gets READ on the secret in step 8, on every run, right before CREATE SERVICE.
-- The admin role owns the SPCS schema, so it may create the secret.
USE ROLE <% ctx.env.admin_role %>;

CREATE SECRET IF NOT EXISTS <% ctx.env.database_name %>.SPCS.GATEWAY_API_TOKEN
  TYPE = GENERIC_STRING
  SECRET_STRING = '<% ctx.env.GATEWAY_API_TOKEN %>'
  COMMENT = 'Bearer token of the gateway /v1 API, mapped into GATEWAY_API_TOKEN by the spec';
