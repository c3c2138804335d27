"""`multibackend verify`: course scripts and notebooks run under every backend (`run`; `child` is one cell)."""
