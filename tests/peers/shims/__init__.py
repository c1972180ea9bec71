"""What the peer suites import from their own repositories, provided here (see tests/peers/conftest.py)."""
