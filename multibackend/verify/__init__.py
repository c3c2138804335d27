"""`multibackend verify`: course scripts and notebooks run under every backend, and what really ran.

The rooms: `model` (options, a run's outcome, `verify.json`), `files` (discovery, reading, the import scan),
`environment` and `containment` (what a run is kept from), `launch` (one run's process), `judge` (its outcome),
`matrix` (every file under every backend, merges, findings), `render` (Markdown and HTML), `shards`, `verdicts`,
`junit`, `options` (the run options of the CLI and the plugin); `child`, `sandbox`, `cells` and `outputs` work in
and on the run's own process and notebook.
"""
