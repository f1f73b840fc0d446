"""Files -> text split into sections under their headings.

Every format is turned into the same shape (a title and `(heading path, text)` sections), so that
chunking and everything after it do not care where the text came from. Headings are found from
markdown `#` lines (also in .txt notes, which often use them), HTML `<h1>`..`<h6>`, docx heading
styles, and PDF pages. Anything we cannot read raises `LoadError` with a reason a person can act on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SUPPORTED = {".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx"}
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")


class LoadError(Exception):
    """The file cannot be ingested; the message says why (binary, encoding, encrypted, empty...)."""


@dataclass
class Section:
    heading: str  # "Title > Subtitle", "" before the first heading
    text: str


@dataclass
class Document:
    path: Path
    title: str
    sections: list[Section] = field(default_factory=list)


def load(path: Path) -> Document:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED:
        raise LoadError(f"unsupported file type {suffix or '(none)'}; supported: {', '.join(sorted(SUPPORTED))}")
    data = path.read_bytes()
    if not data.strip():
        raise LoadError("empty file")
    if suffix == ".pdf":
        title, sections = _pdf(path)
    elif suffix == ".docx":
        title, sections = _markdown(_docx(path))
    elif suffix in (".html", ".htm"):
        title, sections = _markdown(*_html(_decode(data)))
    else:
        title, sections = _markdown(_decode(data))
    sections = [s for s in sections if s.text.strip()]
    if not sections:
        raise LoadError("no text in the file")
    return Document(path=path, title=title or path.stem, sections=sections)


def _decode(data: bytes) -> str:
    # NUL bytes never occur in UTF-8 text, but are everywhere in binaries (and in UTF-16).
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise LoadError("not valid UTF-16 text despite its byte-order mark") from None
    if b"\x00" in data[:8192]:
        raise LoadError("binary file (not text)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # Guessing (GBK, Latin-1...) would index mojibake without a word of warning.
        raise LoadError(f"not UTF-8 text (bad byte at offset {exc.start}); convert the file to UTF-8") from None


def _markdown(text: str, title: str = "") -> tuple[str, list[Section]]:
    """Split on markdown headings, tracking the heading path; the first level-1 heading is the title."""
    sections: list[Section] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    in_code = False

    def flush() -> None:
        if lines:
            sections.append(Section(" > ".join(h for _, h in path), "\n".join(lines).strip()))
            lines.clear()

    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        match = None if in_code else _HEADING.match(line)
        # A run of '#' (e.g. "####### result ####") is decoration, not a heading.
        if match and match.group(2).strip("# "):
            flush()
            level, name = len(match.group(1)), match.group(2).strip()
            path = [(lv, h) for lv, h in path if lv < level] + [(level, name)]
            if level == 1 and not title:
                title = name
        else:
            lines.append(line)
    flush()
    return title, sections


def _html(text: str) -> tuple[str, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "template"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.title:
        soup.title.decompose()
    for tag in soup.find_all(re.compile(r"^h[1-6]$")):
        level = int(tag.name[1])
        tag.replace_with(f"\n\n{'#' * level} {tag.get_text(' ', strip=True)}\n\n")
    body = soup.get_text("\n")
    return re.sub(r"\n{3,}", "\n\n", body), title


def _docx(path: Path) -> str:
    import docx

    try:
        document = docx.Document(str(path))
    except Exception as exc:  # python-docx raises several types for a damaged or non-docx file
        raise LoadError(f"not a readable .docx file ({type(exc).__name__})") from None
    out = []
    title = (document.core_properties.title or "").strip()
    if title:
        out.append(f"# {title}")
    for para in document.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        match = re.match(r"Heading (\d)", style)
        if style == "Title":
            out.append(f"# {para.text}")
        elif match:
            out.append(f"{'#' * min(6, int(match.group(1)) + (1 if title else 0))} {para.text}")
        else:
            out.append(para.text)
    for table in document.tables:
        for row in table.rows:
            out.append(" | ".join(cell.text for cell in row.cells))
    return "\n".join(out)


def _pdf(path: Path) -> tuple[str, list[Section]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except LoadError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({exc})") from None
    except Exception as exc:  # pypdf raises assorted errors (e.g. missing crypto backend)
        raise LoadError(f"unreadable PDF ({type(exc).__name__}: {exc})") from None
    # Pages are the only structure a PDF reliably has; the page number is the heading.
    return str(meta_title).strip(), [Section(f"p. {i}", text) for i, text in enumerate(pages, 1)]
