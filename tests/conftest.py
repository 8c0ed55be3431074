"""Shared fixtures: one data cache for the whole test session (set EQUISCALE_CACHE to reuse yours)."""

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    if "EQUISCALE_CACHE" not in os.environ:
        os.environ["EQUISCALE_CACHE"] = str(tmp_path_factory.mktemp("equiscale_cache"))
    yield os.environ["EQUISCALE_CACHE"]
