-- Step 1 (ACCOUNTADMIN): roles, their hierarchy and the account-level privileges the admin role
-- needs to create everything else. Idempotent: every statement may run again.
--
-- Role model (least privilege):
--   admin_role     owns the database, warehouse, compute pool, repository, stages, tables,
--                  the model service and the functions; granted to SYSADMIN.
--   service_role   owns INFERENCE_SERVICE. The containers' Snowflake session runs as the service
--                  owner, so this role can write the three prediction tables and nothing more.
--   consumer_role  may call FN_API_PREDICT and FN_HEALTH with the warehouse.
--   viewer_role    may open the Streamlit dashboard and read the prediction tables.
USE ROLE ACCOUNTADMIN;

CREATE ROLE IF NOT EXISTS <% ctx.env.admin_role %>
  COMMENT = 'Owns and deploys the evidence risk pipeline';
CREATE ROLE IF NOT EXISTS <% ctx.env.service_role %>
  COMMENT = 'Owner of the gateway SPCS service; writes predictions and features';
CREATE ROLE IF NOT EXISTS <% ctx.env.consumer_role %>
  COMMENT = 'Calls the FN_API_PREDICT and FN_HEALTH service functions';
CREATE ROLE IF NOT EXISTS <% ctx.env.viewer_role %>
  COMMENT = 'Opens the monitoring dashboard and reads prediction tables';

GRANT ROLE <% ctx.env.service_role %> TO ROLE <% ctx.env.admin_role %>;
GRANT ROLE <% ctx.env.consumer_role %> TO ROLE <% ctx.env.admin_role %>;
GRANT ROLE <% ctx.env.viewer_role %> TO ROLE <% ctx.env.admin_role %>;
GRANT ROLE <% ctx.env.admin_role %> TO ROLE SYSADMIN;

-- The user running the deployment switches to the admin role (most steps) and to the service
-- role (step 8 and rollouts) with USE ROLE, so both are granted to that user directly.
SET deploy_user = CURRENT_USER();
GRANT ROLE <% ctx.env.admin_role %> TO USER IDENTIFIER($deploy_user);
GRANT ROLE <% ctx.env.service_role %> TO USER IDENTIFIER($deploy_user);

-- Account-level privileges: the admin role creates its own database, warehouse and pool, so it
-- owns them. No BIND SERVICE ENDPOINT: no endpoint of the pipeline is public.
GRANT CREATE DATABASE ON ACCOUNT TO ROLE <% ctx.env.admin_role %>;
GRANT CREATE WAREHOUSE ON ACCOUNT TO ROLE <% ctx.env.admin_role %>;
GRANT CREATE COMPUTE POOL ON ACCOUNT TO ROLE <% ctx.env.admin_role %>;
