"""Built-in commands of the `mgf` CLI."""
