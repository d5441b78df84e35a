-- Drop everything the deploy scripts and training created, in dependency order.
-- DESTRUCTIVE: the hybrid tables (prediction log, online features, raw evidence) go with the
-- database, and hybrid tables cannot be undropped. Export what you need first.
-- deploy.sh teardown runs ops/teardown_stop_traffic.sql and waits for the queue to drain
-- before this file. Run alone, this file loses the predictions still queued.
USE ROLE <% ctx.env.admin_role %>;

DROP STREAMLIT IF EXISTS <% ctx.env.database_name %>.STREAMLIT_APP.<% ctx.env.streamlit_app %>;
DROP FUNCTION IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.predict_function %>(VARCHAR, VARCHAR, VARCHAR);
DROP FUNCTION IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.health_function %>();
-- DROP SERVICE fails without FORCE when the service uses a block storage volume, as the queue
-- volume of INFERENCE_SERVICE is. FORCE deletes the volumes with the service (Snowflake SQL
-- reference, DROP SERVICE).
DROP SERVICE IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %> FORCE;
DROP SERVICE IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.model_service %>;
-- A pool can only be dropped once no service runs on it; STOP ALL ends anything left over.
ALTER COMPUTE POOL IF EXISTS <% ctx.env.compute_pool %> STOP ALL;
DROP COMPUTE POOL IF EXISTS <% ctx.env.compute_pool %>;
DROP DATABASE IF EXISTS <% ctx.env.database_name %>;
DROP WAREHOUSE IF EXISTS <% ctx.env.warehouse_name %>;

USE ROLE ACCOUNTADMIN;
DROP ROLE IF EXISTS <% ctx.env.viewer_role %>;
DROP ROLE IF EXISTS <% ctx.env.consumer_role %>;
DROP ROLE IF EXISTS <% ctx.env.service_role %>;
DROP ROLE IF EXISTS <% ctx.env.admin_role %>;
