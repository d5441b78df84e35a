-- Resume after suspend.sql: the pool first, then the model service, then the gateway, so that
-- the gateway's readiness probe finds the model. The warehouse resumes on its own when used.
USE ROLE <% ctx.env.admin_role %>;

ALTER COMPUTE POOL IF EXISTS <% ctx.env.compute_pool %> RESUME;
ALTER SERVICE IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.model_service %> RESUME;
ALTER SERVICE IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %> RESUME;

-- Expected after a few minutes: both services RUNNING; step 6 and 8 status queries show READY.
SHOW SERVICES IN SCHEMA <% ctx.env.database_name %>.ML_MODELS;
