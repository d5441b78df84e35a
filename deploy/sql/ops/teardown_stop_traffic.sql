-- First step of deploy.sh teardown: stop new predictions, so the queue can drain.
-- SQL reaches INFERENCE_SERVICE only through these service functions, and its endpoint is not
-- public. Once they are gone the persistence worker writes what each instance's queue still
-- holds into the hybrid tables, and deploy.sh waits until ML_MODELS.MODEL_PREDICTIONS stops
-- growing before ops/teardown.sql drops the service and its block volumes.
USE ROLE <% ctx.env.admin_role %>;

DROP FUNCTION IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.predict_function %>(VARCHAR, VARCHAR, VARCHAR);
DROP FUNCTION IF EXISTS <% ctx.env.database_name %>.ML_MODELS.<% ctx.env.health_function %>();
