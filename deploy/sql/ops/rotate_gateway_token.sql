-- Replace the value of the secret SPCS.GATEWAY_API_TOKEN (`deploy.sh rotate-token`). As in
-- 07_gateway_secret.sql, deploy.sh passes the new value in the environment variable
-- GATEWAY_API_TOKEN, never in a file or on the command line.
--
-- There is no IF EXISTS: rotating a secret that does not exist must fail, rather than report a
-- new token that was never stored. The READ grant of the service role stays in place.
--
-- Running gateways keep the old token: SPCS sets a secret's environment variable when a
-- container starts, and the gateway reads GATEWAY_API_TOKEN once at start. Restart the service
-- afterwards (docs/deploy.md, "Rotating the /v1 token").
USE ROLE <% ctx.env.admin_role %>;

ALTER SECRET <% ctx.env.database_name %>.SPCS.GATEWAY_API_TOKEN
  SET SECRET_STRING = '<% ctx.env.GATEWAY_API_TOKEN %>';
