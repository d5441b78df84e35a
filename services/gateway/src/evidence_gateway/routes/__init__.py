"""HTTP routes: JSON API, Snowflake service functions, health and metrics."""
