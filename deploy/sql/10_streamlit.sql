-- Step 10: the Streamlit in Snowflake app ML_PIPELINE_MONITOR. deploy.sh uploads the files of
-- deploy/streamlit/ to the Streamlit stage first. CREATE ... FROM copies the files at creation,
-- so OR REPLACE is what picks up new files; the app keeps no state, and the grant follows.
USE ROLE <% ctx.env.admin_role %>;

CREATE OR REPLACE STREAMLIT <% ctx.env.database_name %>.STREAMLIT_APP.<% ctx.env.streamlit_app %>
  FROM '@<% ctx.env.database_name %>.STREAMLIT_APP.<% ctx.env.streamlit_stage %>'
  MAIN_FILE = '<% ctx.env.streamlit_main_file %>'
  QUERY_WAREHOUSE = <% ctx.env.warehouse_name %>
  TITLE = '<% ctx.env.streamlit_title %>'
  COMMENT = 'Volume, latency, fallback rate and drift of the evidence risk pipeline';

GRANT USAGE ON STREAMLIT <% ctx.env.database_name %>.STREAMLIT_APP.<% ctx.env.streamlit_app %>
  TO ROLE <% ctx.env.viewer_role %>;
