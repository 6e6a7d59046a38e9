"""Fixtures shared by the test modules (session set-up is in ../conftest.py)."""

import pytest
from _helpers import COVARIANCE_TYPES


@pytest.fixture(params=COVARIANCE_TYPES)
def covariance_type(request):
    """Each covariance type in turn: a test that takes it runs once per type."""
    return request.param
