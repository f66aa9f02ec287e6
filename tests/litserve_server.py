"""A LitServe server of the tiny random-weight preset (LitServe's own ``OpenAISpec``), for docs/http.md's recipe.

``python tests/litserve_server.py --port PORT [--model tiny-gpt2] [--threads N]`` serves
``/v1/chat/completions`` (streamed) on 127.0.0.1 through LitServe: greedy decoding of exactly ``max_tokens``
tokens with the KV cache, one streamed chunk per token, the last one carrying the usage (prompt and completion
tokens). The model is any preset or local model :func:`collector.measuring.measurement.load_model` loads
(random weights when none are available offline); nothing is downloaded. Prompts are counted one token per
whitespace-separated word (the sweep sizes them the same way: ``prompt_tokenizer`` "approximate (words)").

LitServe is not a dependency of this package: ``pip install litserve`` to run it.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import litserve as ls  # noqa: E402
import torch  # noqa: E402

from collector.measuring.measurement import load_model  # noqa: E402


class DecodeAPI(ls.LitAPI):
    """Greedy decoding of exactly ``max_tokens`` tokens, one yield per token."""

    def __init__(self, model: str, threads: int) -> None:
        super().__init__(spec=ls.OpenAISpec())
        self.model_name, self.threads = model, threads

    def setup(self, device: str) -> None:
        torch.set_num_threads(max(1, self.threads))
        self.module = load_model(model=self.model_name, device="cpu", seed=0).module
        self.vocab = int(self.module.config.vocab_size)

    def predict(self, request: Any) -> Iterator[dict[str, Any]]:
        prompt = str(request.messages[-1].content or "")
        budget = int(request.max_tokens or request.max_completion_tokens or 16)
        ids = torch.tensor([[zlib.crc32(w.encode()) % self.vocab for w in prompt.split()] or [0]])
        with torch.inference_mode():
            out = self.module(input_ids=ids, use_cache=True)
            tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            for i in range(budget):
                if i > 0:
                    out = self.module(input_ids=tok, past_key_values=out.past_key_values, use_cache=True)
                    tok = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
                message: dict[str, Any] = {"role": "assistant", "content": f" t{int(tok)}"}
                if i == budget - 1:  # LitServe's OpenAISpec sends the usage of the last chunk
                    message.update(prompt_tokens=int(ids.shape[1]), completion_tokens=budget,
                                   total_tokens=int(ids.shape[1]) + budget)
                yield message

    def encode_response(self, output: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        yield from output


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--model", default="tiny-gpt2")
    p.add_argument("--threads", type=int, default=1)
    opts = p.parse_args()
    server = ls.LitServer(DecodeAPI(opts.model, opts.threads), accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=opts.port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main()
