"""Search engine over plain arrays: the centroid codebook (IVF) and search.

No I/O and no user ids: functions take arrays (memory-mapped by the storage
layer) and return ``(segment, row, score)`` hits.
"""
