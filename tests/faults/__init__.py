"""chirp fault-injection tests (a package, so that this directory's conftest.py
is imported as faults.conftest and never shadows tests/conftest.py, which
other test modules import as ``conftest``)."""
