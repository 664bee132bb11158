"""Index files on disk: the commit point, segments, generations, the id map.

Files only: nothing here knows an engine or an index kind. ``commit`` is the
one place index files are written, fsynced, replaced and locked; ``faults``
holds the test-only failure hooks the write paths call.
"""
