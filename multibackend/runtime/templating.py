"""Markdown and HTML from Jinja2 templates kept beside the code that fills them (`<package>/templates/`)."""

from __future__ import annotations

import functools
import re

import jinja2
import markupsafe

_BOLD, _CODE = re.compile(r"\*\*(.+?)\*\*"), re.compile(r"`(.+?)`")


def inline_markup(text: str) -> markupsafe.Markup:
    """Markdown emphasis in a line of text (`**bold**`, `` `code` ``) as escaped HTML."""
    escaped = str(markupsafe.escape(text))
    return markupsafe.Markup(_CODE.sub(r"<code>\1</code>", _BOLD.sub(r"<b>\1</b>", escaped)))


def markdown_cell(value) -> str:
    """A value as a Markdown table cell: a `|` would end the cell, a line break the row."""
    return " ".join(str(value).replace("|", "/").splitlines())


def markdown_line(value) -> str:
    """A value inside one line of Markdown (a list item, a sentence): a line break in a file name or an error would
    start a line of its own (a planted `- all PASSED`)."""
    return " ".join(str(value).splitlines())


@functools.cache
def _environment(package: str) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader(package, "templates"),
        autoescape=jinja2.select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(inline_markup=inline_markup, md_cell=markdown_cell, md_line=markdown_line)
    return environment


def render(package: str, template: str, context: dict) -> str:
    """Renders `template` from `package`'s `templates/` folder.

    Args:
        package: The dotted package name, e.g. `multibackend.report`.
        template: The file name, e.g. `comparison.md.j2` (`.html.j2` files are autoescaped).
        context: The template's variables; a missing one is an error.

    Returns:
        The rendered text.
    """
    return _environment(package).get_template(template).render(context)
