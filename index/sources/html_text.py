"""Forum HTML (Stack Exchange post bodies, Discourse's cooked posts) to plain text.

The standard library's HTML parser, not a regular expression: entities are decoded,
scripts and styles dropped, block elements (paragraphs, list items, headings, line breaks,
code blocks) become line breaks, and runs of whitespace collapse. Linear in the input."""

from __future__ import annotations

import re
from html.parser import HTMLParser

_BLOCK = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "pre",
          "blockquote", "tr", "hr", "table", "aside"}  # fmt: skip
_SKIP = {"script", "style", "template"}
_SPACES = re.compile(r"[ \t\r\f\v]+")
_LINES = re.compile(r"\n\s*\n+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skipping += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _Text()
    parser.feed(html)
    parser.close()
    text = _SPACES.sub(" ", "".join(parser.parts))
    lines = "\n".join(line.strip() for line in text.split("\n"))
    return _LINES.sub("\n\n", lines).strip()
