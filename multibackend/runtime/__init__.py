"""Process-level helpers: choosing backend and device before Keras is imported, child processes, errors."""
