"""Training data: sources, cache, shards, splits; baselines and model cards."""
