"""Built-in Keras helpers (training, export; imported lazily)."""
