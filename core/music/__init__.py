"""Music utilities used by plugins: scores, corpus, synthesis, plots, metrics."""
