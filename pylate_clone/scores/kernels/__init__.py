"""Search kernels: MaxSim over flat and ragged token matrices (BLAS and numba).

The public scoring names stay in :mod:`pylate_clone.scores`; these modules
are the fast paths the indexes and ``rank.rerank`` call.
"""
