"""Unicode normalisation of the texts that reports give for drugs and their strengths."""

from __future__ import annotations

import unicodedata

__all__ = ["normalise_text"]


def normalise_text(text: str) -> str:
    """Apply Unicode NFKC to a drug text and drop its format characters (category Cf).

    ASCII text is returned unchanged, because NFKC leaves it as it is and it has no format
    characters.
    """
    if text.isascii():
        return text
    normalised = unicodedata.normalize("NFKC", text)
    return "".join(char for char in normalised if unicodedata.category(char) != "Cf")
