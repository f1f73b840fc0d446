"""Helpers for the knowledge-base tests: a fast deterministic embedder, tiny documents, a KB."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from agent.config import Knowledge, Settings
from memory.knowledge import KnowledgeBase
from memory.knowledge.keyword import bigram_tokens

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


class HashEmbedder:
    """Hashed bag of bigrams: no model, instant, and texts sharing words are similar."""

    name = "test-hash"
    dim = 256

    def __init__(self) -> None:
        self.calls = 0
        self.embedded = 0

    def encode(self, texts: list[str], *, query: bool = False) -> np.ndarray:
        self.calls += 1
        self.embedded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in bigram_tokens(text):
                out[i, zlib.crc32(tok.encode()) % self.dim] += 1.0
            out[i, 0] += 1e-3  # no zero vectors
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def make_kb(data_dir: Path, embedder=None, **knowledge) -> KnowledgeBase:
    settings = Settings(data_dir=data_dir, knowledge=Knowledge(**knowledge))
    return KnowledgeBase(settings, embedder=embedder or HashEmbedder())


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF with `text` in Helvetica, built by hand (no PDF writer needed)."""
    stream = f"BT /F1 12 Tf 10 50 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 100] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1) + b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return out


def encrypted_pdf() -> bytes:
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(100, 100)
    writer.encrypt("secret", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()
