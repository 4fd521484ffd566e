"""The suite's fixtures are a plugin: the modules of tests/fixtures, one per concern."""

import pytest

# Before the plugin is imported, so that the helpers' asserts explain themselves too.
pytest.register_assert_rewrite("tests.fixtures")

pytest_plugins = (
    "tests.fixtures.app",
    "tests.fixtures.database",
    "tests.fixtures.redis",
    "tests.fixtures.sim",
    "tests.fixtures.sms",
    "tests.fixtures.browser",
    "tests.fixtures.wechat",
    "tests.fixtures.members",
    "tests.fixtures.feed",
    "tests.fixtures.alerts",
    "tests.fixtures.simkit",
    "tests.fixtures.staff",
    "tests.fixtures.benefits",
)
