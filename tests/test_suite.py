"""The suite's own machinery: tests that share a run made once are kept on one process by their
xdist_group, so the run is made once (pytest-xdist's --dist loadgroup marks their node ids)."""

import os

import pytest

pytestmark = pytest.mark.xdist_group("suite_check")


def test_grouped_tests_carry_their_group_under_loadgroup(request):
    # On a worker, pytest-xdist keeps --dist loadgroup as the option "loadgroup".
    if not os.environ.get("PYTEST_XDIST_WORKER") or not getattr(request.config.option, "loadgroup", False):
        pytest.skip("only under pytest-xdist's --dist loadgroup")
    assert request.node.nodeid.endswith("@suite_check"), (
        f"{request.node.nodeid}: loadgroup did not group this test (pytest-xdist and this pytest disagree"
        " on node ids); the runs that tests share would be made on every process"
    )
