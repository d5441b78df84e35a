-- Step 5: object privileges of the service, consumer and viewer roles. Grants are idempotent.
-- Grants that need the secret, the services or the functions to exist follow in steps 6, 8, 9
-- and 10.
USE ROLE <% ctx.env.admin_role %>;

-- Service role: run the gateway service on the pool from the repository and the spec stage,
-- and write the three tables through the worker (upserts need SELECT, INSERT and UPDATE).
GRANT USAGE ON WAREHOUSE <% ctx.env.warehouse_name %> TO ROLE <% ctx.env.service_role %>;
GRANT USAGE ON DATABASE <% ctx.env.database_name %> TO ROLE <% ctx.env.service_role %>;
GRANT USAGE ON SCHEMA <% ctx.env.database_name %>.SPCS TO ROLE <% ctx.env.service_role %>;
GRANT USAGE ON SCHEMA <% ctx.env.database_name %>.FEATURE_STORE TO ROLE <% ctx.env.service_role %>;
GRANT USAGE ON SCHEMA <% ctx.env.database_name %>.ML_MODELS TO ROLE <% ctx.env.service_role %>;
GRANT CREATE SERVICE ON SCHEMA <% ctx.env.database_name %>.ML_MODELS TO ROLE <% ctx.env.service_role %>;
GRANT USAGE, MONITOR ON COMPUTE POOL <% ctx.env.compute_pool %> TO ROLE <% ctx.env.service_role %>;
GRANT READ ON IMAGE REPOSITORY <% ctx.env.database_name %>.SPCS.<% ctx.env.image_repository %> TO ROLE <% ctx.env.service_role %>;
GRANT READ ON STAGE <% ctx.env.database_name %>.SPCS.<% ctx.env.spec_stage %> TO ROLE <% ctx.env.service_role %>;
GRANT SELECT, INSERT, UPDATE ON TABLE <% ctx.env.database_name %>.FEATURE_STORE.ONLINE_FEATURES TO ROLE <% ctx.env.service_role %>;
GRANT SELECT, INSERT, UPDATE ON TABLE <% ctx.env.database_name %>.FEATURE_STORE.RAW_EVIDENCE TO ROLE <% ctx.env.service_role %>;
GRANT SELECT, INSERT, UPDATE ON TABLE <% ctx.env.database_name %>.ML_MODELS.MODEL_PREDICTIONS TO ROLE <% ctx.env.service_role %>;
-- The worker's current schema, where it creates its temporary staging tables.
-- NOTE: the CREATE TABLE grant assumes that a temporary table needs it like a permanent one;
-- this has not been checked against an account.
GRANT USAGE, CREATE TABLE ON SCHEMA <% ctx.env.database_name %>.WORKER_STAGING TO ROLE <% ctx.env.service_role %>;

-- Consumer role: the warehouse that runs the calling query. USAGE on the two functions is
-- granted in step 9, once they exist.
GRANT USAGE ON WAREHOUSE <% ctx.env.warehouse_name %> TO ROLE <% ctx.env.consumer_role %>;
GRANT USAGE ON DATABASE <% ctx.env.database_name %> TO ROLE <% ctx.env.consumer_role %>;
GRANT USAGE ON SCHEMA <% ctx.env.database_name %>.ML_MODELS TO ROLE <% ctx.env.consumer_role %>;

-- Viewer role: read the features and the prediction log, never the raw evidence (health data).
-- USAGE on the Streamlit app is granted in step 10.
GRANT USAGE ON WAREHOUSE <% ctx.env.warehouse_name %> TO ROLE <% ctx.env.viewer_role %>;
GRANT USAGE ON DATABASE <% ctx.env.database_name %> TO ROLE <% ctx.env.viewer_role %>;
GRANT USAGE ON SCHEMA <% ctx.env.database_name %>.FEATURE_STORE TO ROLE <% ctx.env.viewer_role %>;
GRANT USAGE ON SCHEMA <% ctx.env.database_name %>.ML_MODELS TO ROLE <% ctx.env.viewer_role %>;
GRANT USAGE ON SCHEMA <% ctx.env.database_name %>.STREAMLIT_APP TO ROLE <% ctx.env.viewer_role %>;
GRANT SELECT ON TABLE <% ctx.env.database_name %>.FEATURE_STORE.ONLINE_FEATURES TO ROLE <% ctx.env.viewer_role %>;
GRANT SELECT ON TABLE <% ctx.env.database_name %>.ML_MODELS.MODEL_PREDICTIONS TO ROLE <% ctx.env.viewer_role %>;
