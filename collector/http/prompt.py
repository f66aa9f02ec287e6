"""A prompt of a given length in tokens for a server we only reach through HTTP (stdlib only).

The content of a prompt does not change the work of a forward pass; its
length does. A prompt is ``n`` common English words drawn with the run's seed
(so two runs do not share a prefix a server could cache, and a run is
reproducible). Each word is one token, with its leading space, in the
byte-pair vocabularies of the usual model families (GPT-2, Llama, Mistral,
Qwen): that is the approximation when the server exposes no tokenizer.

Where it does (llama.cpp's ``POST /tokenize`` with ``content``, vLLM's with
``prompt``), :func:`fit` asks it and adds or drops words until the prompt is
exactly ``prompt_len`` tokens. Either way the server's ``usage.prompt_tokens``
of each run is recorded (``server_prompt_tokens``), so what was really sent is
in the data.
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["WORDS", "words", "fit"]

#: Words that are one token (with their leading space) in common BPE vocabularies.
WORDS: tuple[str, ...] = (
    "the", "of", "and", "to", "in", "is", "for", "on", "that", "with", "as", "was", "by", "at", "from", "his",
    "an", "be", "this", "are", "or", "had", "not", "but", "one", "which", "were", "all", "they", "her", "their",
    "has", "been", "more", "when", "who", "will", "there", "time", "would", "first", "new", "can", "if", "other",
    "into", "year", "two", "after", "some", "most", "over", "where", "city", "only", "made", "world", "state",
    "school", "then", "also", "than", "music", "water", "house", "game", "part", "team", "film", "book", "line",
    "work", "life", "name", "place", "light", "road", "river", "small", "large", "long", "high", "black", "white",
)


def words(n: int, seed: int) -> str:
    """``n`` words drawn with ``seed``, joined by spaces (``n`` tokens in most vocabularies)."""
    rng = random.Random(int(seed))
    return " ".join(rng.choice(WORDS) for _ in range(max(int(n), 0)))


def fit(n: int, seed: int, count: Callable[[str], int] | None = None, *, tries: int = 6) -> tuple[str, int]:
    """A prompt of ``n`` tokens and its length as counted (-1 where nothing counted it).

    Parameters
    ----------
    n
        Tokens wanted (the run's ``prompt_len``).
    seed
        The run's seed.
    count
        The server's tokenizer (text -> tokens), or None: ``n`` words are sent as they are.
    tries
        Rounds of adding or dropping words by the difference counted.
    """
    if count is None:
        return words(n, seed), -1
    k = n
    text = words(k, seed)
    got = count(text)
    for _ in range(tries):
        if got == n:
            break
        k = max(1, k + (n - got))
        text = words(k, seed)
        got = count(text)
    return text, got
