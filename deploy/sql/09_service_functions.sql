-- Step 9: the service functions. Each SQL call sends rows in batches of at most MAX_BATCH_ROWS
-- as {"data": [[row, policy_number, mib_xml, rx_xml], ...]} to the gateway's endpoint `api`.
--
-- Batch settings:
--   MAX_BATCH_ROWS = 25       the gateway scores a batch with one model call. A full batch of
--                             maximum-size documents, 25 rows x 2 x 1,000,000 bytes x 1.25
--                             for JSON escaping, is 62.5 MB and fits the 64 MB body limit
--                             (GATEWAY_MAX_BODY_BYTES in spcs/inference_service.yaml). A
--                             larger batch would get 413, which is not retried and fails the
--                             query. Change the three values together.
--   MAX_BATCH_RETRIES = 3     retries on 404, 429 and 5xx; the gateway returns 503 with
--                             Retry-After when its queue is full, so a retry is the
--                             backpressure path.
--   ON_BATCH_FAILURE = ABORT  a batch that fails after the retries fails the query, rather than
--                             returning NULL scores a caller could take for real ones. Bad rows
--                             never fail a batch: each gets an {"error": ...} object in its row.
--   BATCH_TIMEOUT_SECS = 120  bound on one batch including retries.
-- CREATE OR ALTER keeps the grants below when the function already exists.
USE ROLE <% ctx.env.admin_role %>;

CREATE OR ALTER FUNCTION <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.predict_function %>(
    policy_number VARCHAR, mib_xml VARCHAR, rx_xml VARCHAR)
  RETURNS VARIANT
  SERVICE = <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %>
  ENDPOINT = api
  MAX_BATCH_ROWS = 25
  MAX_BATCH_RETRIES = 3
  ON_BATCH_FAILURE = ABORT
  BATCH_TIMEOUT_SECS = 120
  AS '/functions/predict';

CREATE OR ALTER FUNCTION <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.health_function %>()
  RETURNS VARIANT
  SERVICE = <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %>
  ENDPOINT = api
  MAX_BATCH_ROWS = 1
  MAX_BATCH_RETRIES = 1
  ON_BATCH_FAILURE = ABORT
  BATCH_TIMEOUT_SECS = 30
  AS '/functions/health';

GRANT USAGE ON FUNCTION <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.predict_function %>(VARCHAR, VARCHAR, VARCHAR)
  TO ROLE <% ctx.env.consumer_role %>;
GRANT USAGE ON FUNCTION <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.health_function %>()
  TO ROLE <% ctx.env.consumer_role %>;
-- Endpoint usage of the gateway's `api` endpoint (service role api_users in the spec).
GRANT SERVICE ROLE <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %>!API_USERS
  TO ROLE <% ctx.env.consumer_role %>;
