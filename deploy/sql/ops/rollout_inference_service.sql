-- Apply a new gateway or worker image tag, a changed spec, or a new model service host to the
-- running INFERENCE_SERVICE. SPCS replaces the instances one by one (rolling upgrade), and the
-- readiness probes keep traffic off an instance until its gateway passes /health/ready.
-- deploy.sh rollout runs this after it has pushed the images and uploaded the spec; the USING
-- clause must stay identical to the one in 08_inference_service.sql (a test checks it).
USE ROLE <% ctx.env.service_role %>;

ALTER SERVICE <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %>
  FROM @<% ctx.env.database_name %>.SPCS.<% ctx.env.spec_stage %>
  SPECIFICATION_TEMPLATE_FILE = 'inference_service.yaml'
  USING (
    gateway_image => '<% ctx.env.image_repository_path %>/evidence-gateway:<% ctx.env.image_tag %>',
    worker_image => '<% ctx.env.image_repository_path %>/evidence-worker:<% ctx.env.image_tag %>',
    model_service_url => 'http://<% ctx.env.model_service_dns %>:<% ctx.env.model_service_port %>',
    model_version => '<% ctx.env.model_version %>',
    model_feature_spec_hash => '<% ctx.env.model_feature_spec_hash %>',
    database_name => '<% ctx.env.database_name %>',
    warehouse_name => '<% ctx.env.warehouse_name %>',
    store_raw_evidence => '<% ctx.env.store_raw_evidence %>'
  );

-- Expected after the upgrade: every container of every instance READY.
USE WAREHOUSE <% ctx.env.warehouse_name %>;
SELECT
  c.value:containerName::STRING AS container_name,
  c.value:instanceId::STRING AS instance_id,
  c.value:status::STRING AS status,
  c.value:image::STRING AS image
FROM TABLE(FLATTEN(INPUT => PARSE_JSON(SYSTEM$GET_SERVICE_STATUS(
  '<% ctx.env.database_name %>.ML_MODELS.<% ctx.env.inference_service %>',
  600)))) AS c;
