"""The ``mgf`` command line: a thin layer over the API and the plugin registries."""
