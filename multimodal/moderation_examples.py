"""Labelled examples for the offline moderation classifier (multimodal/moderation.py), English
and Chinese. Written for the classifier alone: the bench's messages (bench/safety_messages.jsonl)
are a separate set, so the bench measures messages the classifier has never seen.

`benign` holds ordinary requests, many of them near misses (violent words in technical or
everyday senses), which a hostile category must beat by `safety.margin` to flag a message.

The examples are data, kept in moderation_examples.json beside this module (edit them there).
"""

from __future__ import annotations

import json
from pathlib import Path

_DATA = json.loads(Path(__file__).with_name("moderation_examples.json").read_text(encoding="utf-8"))
EXAMPLES: dict[str, list[str]] = _DATA["examples"]
BENIGN: list[str] = _DATA["benign"]
