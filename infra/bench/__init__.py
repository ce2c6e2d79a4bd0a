"""`glmserve bench`: a load sweep against a deployed stack's endpoint, its statistics, engine
metrics, cost per million output tokens, saved runs and a chart (docs/bench.md)."""
