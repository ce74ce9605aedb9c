"""The contract between the core and its plugins: hook specs, registry, boundary, options, base classes, bundles."""
