"""Training a course example: the runner (`multibackend run`, Keras `fit`) and the framework loops (the fast path)."""
