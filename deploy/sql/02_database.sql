-- Step 2: database, the five schemas and the warehouse. The warehouse starts suspended and
-- suspends itself after 60 idle seconds, so it costs nothing until a query runs.
USE ROLE <% ctx.env.admin_role %>;

CREATE WAREHOUSE IF NOT EXISTS <% ctx.env.warehouse_name %>
  WITH WAREHOUSE_SIZE = '<% ctx.env.warehouse_size %>'
  AUTO_SUSPEND = 60
  AUTO_RESUME = TRUE
  INITIALLY_SUSPENDED = TRUE
  COMMENT = 'Service functions, hybrid-table writes and the dashboard';

-- Hybrid tables need a permanent database and schemas (never transient).
CREATE DATABASE IF NOT EXISTS <% ctx.env.database_name %>
  COMMENT = 'Evidence risk pipeline: features, predictions, model, services';
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database_name %>.SPCS
  COMMENT = 'Image repository and service specifications';
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database_name %>.FEATURE_STORE
  COMMENT = 'Online features and optional raw evidence (hybrid tables)';
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database_name %>.ML_MODELS
  COMMENT = 'Model Registry, prediction log, services and service functions';
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database_name %>.STREAMLIT_APP
  COMMENT = 'Streamlit monitoring app';
-- The worker's session loads each batch into temporary tables here with bind parameters
-- before it merges them into the hybrid tables. A schema of its own keeps the CREATE TABLE
-- grant that temporary tables need away from the schemas of the real tables.
CREATE SCHEMA IF NOT EXISTS <% ctx.env.database_name %>.WORKER_STAGING
  COMMENT = 'Temporary staging tables of the persistence worker; no permanent table';
