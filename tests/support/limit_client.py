"""A separate client process for the provider-limit tests: embeds through the shared window.

``python -m tests.support.limit_client N TAG`` builds memlane's services from the ``MEMLANE_*``
environment (as a worker would), embeds N distinct texts one request each (``max_batch`` 1 in
the test's settings), and prints ``done N``. Two of these share one Redis window.
"""

from __future__ import annotations

import sys

from memlane.config import load_settings
from memlane.services import Services


def main(argv: list[str]) -> int:
    """Embed ``argv[0]`` texts tagged ``argv[1]``; 0 when every vector came back."""
    count, tag = int(argv[0]), argv[1]
    services = Services(load_settings())
    try:
        texts = [f"{tag} text {i}" for i in range(count)]
        vectors = services.embedder.embed_passages(texts)
    finally:
        services.close()
    print(f"done {len(vectors)}", flush=True)
    return 0 if len(vectors) == count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
