"""PyLate compatibility: its folder formats, its PLAID parameters, absent backends."""
