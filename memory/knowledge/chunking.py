"""Sections -> overlapping chunks sized in characters, cut at paragraph and sentence ends.

Sizes count characters, not words: Chinese has no spaces, and a word count would make a Chinese
paragraph one giant "word". The cutting is LangChain's `RecursiveCharacterTextSplitter` (well
kept, and it merges small pieces back up to the size with overlap); we only give it a separator
ladder that knows Chinese punctuation (。！？；) next to English sentence ends, and keep each
separator at the end of its sentence. A chunk never spans two sections, so its heading is exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from memory.knowledge.loaders import Section

# Coarse to fine: paragraphs, lines, sentence ends (Chinese full-width, then English with the
# space after it so "3.14" or "e.g." stay whole), clauses, words, and finally characters.
SEPARATORS = [
    "\n\n", "\n",
    "。", "！", "？", "；", "…",
    ". ", "! ", "? ", "; ",
    "，", "、", ", ", "：", ": ",
    " ", "",
]


@dataclass(frozen=True)
class Chunk:
    text: str
    heading: str
    position: int  # index of the chunk in its document


@lru_cache(maxsize=8)
def _splitter(size: int, overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=min(overlap, size // 2),
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def chunk_sections(sections: list[Section], size: int = 500, overlap: int = 80) -> list[Chunk]:
    splitter = _splitter(size, overlap)
    chunks: list[Chunk] = []
    for section in sections:
        for piece in splitter.split_text(section.text):
            if piece.strip():
                chunks.append(Chunk(piece, section.heading, len(chunks)))
    return chunks


def embedding_text(chunk_text: str, heading: str, title: str = "") -> str:
    """What the embedder and BM25 see: the heading path gives a short chunk its topic."""
    context = " > ".join(p for p in (title, heading) if p)
    return f"{context}\n{chunk_text}" if context else chunk_text
