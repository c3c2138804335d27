"""The backend comparison: `collect` reads results files, `plots` draws them, `comparison` writes the
page from the templates in `templates/`, and `compare` runs what is missing first."""
