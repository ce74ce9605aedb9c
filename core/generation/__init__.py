"""Generation: the API, the run and its rules."""
