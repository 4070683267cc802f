"""Peers: the strategies a lab would otherwise use, run by ``matloop bench`` in the same runs, seeds and initial
points as matloop's own, so that matloop is measured against them side by side.

* ``botorch-logei``, ``botorch-ucb``: plain BoTorch as written from its tutorials (`surrogate.peers.plain_botorch`);
* ``ax-pool``: Ax's default generation strategy on pool problems (`surrogate.peers.ax_pool`; on continuous problems
  the ``ax`` strategy is the peer);
* ``baybe``: BayBE's default recommender through its Campaign API (`surrogate.peers.baybe_peer`; needs the optional
  extra ``pip install matloop[peers]``).

Continuous peers are registered in `surrogate.registry`, pool peers in `surrogate.pool.POOL_STRATEGIES`, which
imports the pool modules (`surrogate.peers.pool_peers`, `surrogate.peers.ax_pool`) after defining `PoolBase`: reach
the pool peers through `surrogate.pool`. This package imports nothing heavy, so that validating a campaign that
names a peer does not import torch."""
