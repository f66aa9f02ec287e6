"""Engine ``http``: sweep an OpenAI-compatible server (mlx-lm, llama.cpp, Ollama, LM Studio, vLLM, LitServe).

``python -m collector run --engine http --endpoint URL --models NAME...``:
each run is one streamed request, timed by the client (docs/http.md).

Modules (stdlib only; none imports torch):

* :mod:`~collector.http.target` the endpoint settings (URL checked, keys only by environment variable);
* :mod:`~collector.http.settings` what an http sweep fixes and checks up front;
* :mod:`~collector.http.client` one streamed request and its per-token arrival times;
* :mod:`~collector.http.prompt` a prompt of ``prompt_len`` tokens;
* :mod:`~collector.http.probe` what the server says about itself (software, version, tokenizer);
* :mod:`~collector.http.server` and :mod:`~collector.http.supervise` a fresh server per configuration;
* :mod:`~collector.http.engine` the worker's runner of device ``http``;
* :mod:`~collector.http.dataset` the attrs and variables an http dataset adds.
"""

__all__: list[str] = []
