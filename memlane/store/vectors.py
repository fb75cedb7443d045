"""Pure numpy helpers for exact cosine kNN: blobs, normalisation and top-k selection."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
Vector = npt.NDArray[np.float32]


def to_blob(vector: Sequence[float]) -> bytes:
    """A vector as little-endian float32 bytes (the SQLite storage format)."""
    return np.asarray(vector, dtype="<f4").tobytes()


def from_blob(blob: bytes) -> Vector:
    """The inverse of :func:`to_blob`."""
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def normalise(vector: Sequence[float] | Vector) -> Vector:
    """The unit vector in the same direction; a zero vector stays zero (scores 0 everywhere)."""
    arr = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(arr))
    return (arr / np.float32(norm)).astype(np.float32) if norm > 0 else arr


def normalise_rows(matrix: Matrix) -> Matrix:
    """Each row scaled to unit length; zero rows stay zero."""
    norms: Matrix = np.linalg.norm(matrix, axis=1, keepdims=True).astype(np.float32)
    norms[norms == 0] = 1.0
    return np.divide(matrix, norms, dtype=np.float32)


def stack(blobs: Sequence[bytes], dims: int) -> Matrix:
    """Row-normalised ``len(blobs) x dims`` matrix built from float32 blobs."""
    if not blobs:
        return np.zeros((0, dims), dtype=np.float32)
    matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dims)
    return normalise_rows(matrix.astype(np.float32))


def product(matrix: Matrix, vector: Vector) -> Vector:
    """``matrix @ vector`` on the calling thread, without numpy's BLAS.

    OpenBLAS runs a product of this size on a thread per core, and its threads then spin for
    about 100 ms waiting for more work, taking a core from the local model's next embedding.
    Limiting its thread count around the call (threadpoolctl) did not hold: with OpenBLAS 0.3.31
    (numpy 2.4) its threads still spun after a product run from a thread other than the main
    one, and a search from a thread pool (a server's, a bot's) took 58 ms instead of 24 on 2
    cores. ``einsum`` runs numpy's own SIMD loop instead: as fast at these sizes (2,000 x 384: 0.2
    ms; 100,000 x 384: 20 ms against 23 for single-threaded BLAS) and it starts no threads.
    """
    result: Vector = np.einsum("ij,j->i", matrix, vector)
    return result


def top_k(
    matrix: Matrix,
    query: Sequence[float] | Vector,
    k: int,
    mask: npt.NDArray[np.bool_] | None = None,
) -> list[tuple[int, float]]:
    """Rows of a row-normalised ``matrix`` most cosine-similar to ``query``, best first.

    Returns ``(row index, cosine)``; rows where ``mask`` is False are never returned. Ties are
    broken by row index so results are deterministic.
    """
    if k < 1 or matrix.shape[0] == 0:
        return []
    rows = np.arange(matrix.shape[0]) if mask is None else np.flatnonzero(mask)
    if rows.size == 0:
        return []
    scores = product(matrix[rows], normalise(query))
    if rows.size > k:
        keep = np.argpartition(-scores, k - 1)[:k]
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))
    return [(int(rows[i]), float(scores[i])) for i in order]
