"""Pytest fixtures for the local Slack stand-in.

A test module imports the fixture, then asks for ``slack_standin`` by name::

    from tests.support.fixtures import slack_standin_fixture  # noqa: F401

Importing ``slack_standin_fixture`` (registered under the name ``slack_standin``) rather than
``slack_standin`` keeps ruff's F811 quiet: a test parameter named like an imported function is
reported as a redefinition. ``from tests.support.fixtures import slack_standin`` works as well.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlops.dev.slack_standin import SlackStandin

# slack-sdk reads these itself (and ignores NO_PROXY): a proxy would stand between it and 127.0.0.1.
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


@pytest.fixture(name="slack_standin")
def slack_standin_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandin]:
    """A started Slack stand-in (token ``xoxb-test``), stopped after the test."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with SlackStandin(token="xoxb-test") as standin:
        yield standin


slack_standin = slack_standin_fixture
