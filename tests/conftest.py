"""Shared fixtures: one data cache for the whole test session (set EQUISCALE_CACHE to reuse yours)."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    if "EQUISCALE_CACHE" not in os.environ:
        os.environ["EQUISCALE_CACHE"] = str(tmp_path_factory.mktemp("equiscale_cache"))
    yield os.environ["EQUISCALE_CACHE"]


def pytest_collection_modifyitems(config, items):
    """Every test not marked ``slow`` is ``fast``: ``pytest -m fast`` (``make test-fast``) and
    ``pytest -m slow`` split the suite in two; ``make test`` runs both."""
    for item in items:
        if item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)
