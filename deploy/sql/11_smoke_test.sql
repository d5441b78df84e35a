-- Step 11: smoke test. Every column whose name starts with OK_ must be TRUE; deploy.sh fails
-- when one is FALSE or NULL. Run it as the admin role, which inherits the consumer role's grants.
USE ROLE <% ctx.env.admin_role %>;
USE WAREHOUSE <% ctx.env.warehouse_name %>;

-- 1. Health through the service function. Expected: one row with STATUS = healthy; HEALTH contains
--    the gateway's readiness checks (model reachable, queue writable) and the model version.
--    "degraded" means the gateway scores with the rule-based fallback: check step 6.
SELECT
  h AS health,
  h:status::STRING AS status,
  h:status::STRING = 'healthy' AS ok_health
FROM (SELECT <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.health_function %>() AS h);

-- 2. One prediction. Expected: the registry model scores the row
--    (MODEL_VERSION = REGISTRY_<version>, not RULE_BASED), the score is a probability, and the
--    gateway's own time is under 100 ms.
SELECT
  r:model_version::STRING AS model_version,
  r:risk_score::FLOAT AS risk_score,
  r:risk_level::STRING AS risk_level,
  r:inference_ms::FLOAT AS inference_ms,
  r:model_version::STRING = 'REGISTRY_<% ctx.env.model_version %>' AS ok_registry_model,
  r:risk_score::FLOAT BETWEEN 0 AND 1 AS ok_score_is_probability,
  r:policy_number::STRING = 'SMOKE-0001' AS ok_policy_echoed,
  r:inference_ms::FLOAT < 100 AS ok_under_100_ms
FROM (
  SELECT <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.predict_function %>(
    'SMOKE-0001',
    '<?xml version="1.0"?><Response><ResponseData>503D</ResponseData></Response>',
    '<?xml version="1.0"?><IntelRXResponse><DrugFill><DrugGenericName>METFORMIN</DrugGenericName></DrugFill></IntelRXResponse>'
  ) AS r
);

-- 3. A batch with one malformed document. Expected: three rows in input order; the bad row
--    carries an error object in its own row and the other two are scored.
SELECT
  t.policy_number,
  r:error::STRING AS error,
  CASE WHEN t.policy_number = 'SMOKE-BAD' THEN r:error IS NOT NULL
       ELSE r:error IS NULL AND r:policy_number::STRING = t.policy_number END AS ok_row
FROM (
  SELECT
    column1 AS policy_number,
    <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.predict_function %>(column1, column2, column3) AS r
  FROM VALUES
    ('SMOKE-0002', '<Response><ResponseData>911</ResponseData></Response>', NULL),
    ('SMOKE-BAD', '<Response><ResponseData>', NULL),
    ('SMOKE-0003', NULL, '<IntelRXResponse/>')
) AS t
ORDER BY t.policy_number;

-- 4. Persistence. The worker drains the queue every second or so; give it 15 s. Expected:
--    OK_PERSISTED = TRUE (SMOKE-0001, -0002 and -0003 each have a SQL-sourced prediction and a
--    row of online features).
CALL SYSTEM$WAIT(15);
SELECT
  (SELECT COUNT(DISTINCT policy_number)
     FROM <% ctx.env.database_name %>.ML_MODELS.MODEL_PREDICTIONS
    WHERE policy_number IN ('SMOKE-0001', 'SMOKE-0002', 'SMOKE-0003') AND source = 'SQL')
    AS predicted_policies,
  (SELECT COUNT(*)
     FROM <% ctx.env.database_name %>.FEATURE_STORE.ONLINE_FEATURES
    WHERE policy_number IN ('SMOKE-0001', 'SMOKE-0002', 'SMOKE-0003'))
    AS feature_rows,
  predicted_policies = 3 AND feature_rows = 3 AS ok_persisted;
