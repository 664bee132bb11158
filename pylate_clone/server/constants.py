"""Names shared by the server's modules (no third-party imports here)."""

#: Environment variable holding the API key when ``--api-key`` is not given.
API_KEY_ENV = "PYLATE_CLONE_API_KEY"
#: Model PyLate's server loads, and assumes when a request names none.
PYLATE_DEFAULT_MODEL = "lightonai/GTE-ModernColBERT-v1"
#: Default of ``--max-batch``: most texts or ids one request may carry.
DEFAULT_MAX_BATCH = 256
