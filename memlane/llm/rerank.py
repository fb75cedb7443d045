"""Optional reranker speaking the common ``/rerank`` API (SiliconFlow, Jina, Cohere-style)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from memlane.config_sections import RerankSettings
from memlane.errors import LLMError, LLMRateLimited, LLMUnavailable


class Reranker:
    """POST ``{model, query, documents, top_n}``; read ``results[].index/relevance_score``."""

    def __init__(self, settings: RerankSettings) -> None:
        if not settings.base_url:
            raise LLMError("rerank.base_url: required when rerank is enabled")
        headers = {}
        if settings.api_key:
            headers["Authorization"] = f"Bearer {settings.api_key.get_secret_value()}"
        self._model = settings.model
        self._url = settings.base_url.rstrip("/") + "/rerank"
        self._http = httpx.Client(timeout=settings.timeout_s, headers=headers)

    def scores(self, query: str, documents: Sequence[str]) -> list[float]:
        """One relevance score per document, in the documents' order."""
        body = {
            "model": self._model,
            "query": query,
            "documents": list(documents),
            "top_n": len(documents),
        }
        try:
            resp = self._http.post(self._url, json=body)
        except httpx.HTTPError as e:
            raise LLMUnavailable(f"rerank endpoint unreachable: {type(e).__name__}") from e
        if resp.status_code == 429:
            raise LLMRateLimited("rerank rate limited")
        if resp.status_code >= 500:
            raise LLMUnavailable(f"rerank endpoint failed: {resp.status_code}")
        if resp.status_code >= 400:
            raise LLMError(f"rerank request refused: {resp.status_code}")
        out = [0.0] * len(documents)
        try:
            for item in resp.json()["results"]:
                out[int(item["index"])] = float(item["relevance_score"])
        except (KeyError, ValueError, IndexError, TypeError) as e:
            raise LLMError("rerank endpoint returned an unexpected shape") from e
        return out

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()
