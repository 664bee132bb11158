"""The segment index: storage and engine joined (writes, merges, search).

:class:`~.index.SegmentedIndex` owns the transactions over a folder of
immutable segments; ``merge`` compacts them; ``end_to_end`` is the search
entry shared by the kinds that rank documents themselves (PLAID, Exact).
"""
