-- Stop the running costs without dropping anything. Suspended services keep their spec, DNS
-- name and block volume (the queue); the pool stops billing once no service runs on it.
-- Resume with resume.sql. Service functions called while suspended fail, unless AUTO_RESUME
-- wakes the gateway service (it is TRUE), which takes a few minutes.
USE ROLE <% ctx.env.admin_role %>;

ALTER SERVICE IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %> SUSPEND;
ALTER SERVICE IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.model_service %> SUSPEND;
ALTER COMPUTE POOL IF EXISTS <% ctx.env.compute_pool %> SUSPEND;
ALTER WAREHOUSE IF EXISTS <% ctx.env.warehouse_name %> SUSPEND;

-- Expected: both services SUSPENDED (or SUSPENDING for a minute), the pool SUSPENDED.
SHOW SERVICES IN SCHEMA <% ctx.env.database_name %>.ML_MODELS;
SHOW COMPUTE POOLS LIKE '<% ctx.env.compute_pool %>';
