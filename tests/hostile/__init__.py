# A package, so that this directory's conftest.py is imported as
# "hostile.conftest" and never shadows tests/conftest.py (plain "conftest").
