"""Shared test configuration.

``@pytest.mark.not_under_asan("why")``: skipped when the suite runs on the
AddressSanitizer build (.ci/run preloads libasan), for tests that cap the
address space or measure resident memory, which ASan's shadow memory and
quarantine make meaningless."""
import os
import tempfile

import pytest

UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")

# generated C (pytape/codegen.py) built by the tests goes to a scratch cache, not the user's ~/.cache
os.environ.setdefault("PYTAPE_CACHE", tempfile.mkdtemp(prefix="pytape-test-cache-"))


def pytest_configure(config):
    config.addinivalue_line("markers", "not_under_asan(reason): skipped under AddressSanitizer (.ci/run)")


def pytest_collection_modifyitems(config, items):
    if not UNDER_ASAN:
        return
    for item in items:
        mark = item.get_closest_marker("not_under_asan")
        if mark is not None:
            reason = mark.args[0] if mark.args else "not meaningful under AddressSanitizer"
            item.add_marker(pytest.mark.skip(reason=f"under AddressSanitizer (.ci/run): {reason}"))
