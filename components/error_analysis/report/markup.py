"""Text for the report's HTML and SVG, shared by the page, its comparison section and charts."""

import html


def escape(value) -> str:
    """`value` as escaped text (quotes too, for attributes); None as empty."""
    return html.escape('' if value is None else str(value))
