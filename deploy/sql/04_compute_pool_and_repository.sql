-- Step 4: the compute pool both services run on, the image repository, the stage for service
-- specifications and the stage for the Streamlit files.
USE ROLE <% ctx.env.admin_role %>;

-- CPU_X64_XS nodes (1 vCPU, 6 GB). The model service and one to three gateway instances fit on
-- one to three nodes. The pool suspends itself once no service has run on it for
-- compute_pool_auto_suspend_secs; suspending the services (ops/suspend.sql) allows that.
CREATE COMPUTE POOL IF NOT EXISTS <% ctx.env.compute_pool %>
  MIN_NODES = <% ctx.env.compute_pool_min_nodes %>
  MAX_NODES = <% ctx.env.compute_pool_max_nodes %>
  INSTANCE_FAMILY = <% ctx.env.compute_pool_instance_family %>
  AUTO_RESUME = TRUE
  AUTO_SUSPEND_SECS = <% ctx.env.compute_pool_auto_suspend_secs %>
  COMMENT = 'Gateway service and Model Registry inference service';

CREATE IMAGE REPOSITORY IF NOT EXISTS
  <% ctx.env.database_name %>.SPCS.<% ctx.env.image_repository %>;

-- Server-side encryption is required for stages that SPCS reads specifications from.
CREATE STAGE IF NOT EXISTS <% ctx.env.database_name %>.SPCS.<% ctx.env.spec_stage %>
  DIRECTORY = (ENABLE = TRUE)
  ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')
  COMMENT = 'SPCS service specification templates';

CREATE STAGE IF NOT EXISTS <% ctx.env.database_name %>.STREAMLIT_APP.<% ctx.env.streamlit_stage %>
  DIRECTORY = (ENABLE = TRUE)
  ENCRYPTION = (TYPE = 'SNOWFLAKE_SSE')
  COMMENT = 'Files of the ML_PIPELINE_MONITOR Streamlit app';
