"""Fixtures of the real-client tests: Hydrogen served for the session's stack, headless
Chromium (Debian's, driven by Playwright), and artifacts of a failed test (screenshots, the
browser console, matrix-js-sdk's log) under ``test-artifacts/<test>/``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from tests.harness.hydrogen import CHROMIUM, REPOSITORY, HydrogenClient, HydrogenServer
from tests.harness.stack import Stack

ARTIFACTS = REPOSITORY / "test-artifacts"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"report_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    return ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)


@pytest.fixture(scope="session")
def hydrogen(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HydrogenServer]:
    server = HydrogenServer(tmp_path_factory.mktemp("hydrogen") / "web", stack.url)
    yield server
    server.close()


class Browsers:
    """Opens one Hydrogen per person, each in its own browser profile."""

    def __init__(self, browser: Any, url: str) -> None:
        self.browser = browser
        self.url = url
        self.opened: list[HydrogenClient] = []

    async def open(self, name: str) -> HydrogenClient:
        client = await HydrogenClient.open(self.browser, name, self.url)
        self.opened.append(client)
        return client


@pytest.fixture
async def browsers(
    request: pytest.FixtureRequest, hydrogen: HydrogenServer
) -> AsyncIterator[Browsers]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        made = Browsers(browser, hydrogen.url)
        try:
            yield made
        finally:
            if failed(request):
                for client in made.opened:
                    await client.save_artifacts(artifacts_dir(request))
            for client in made.opened:
                await client.close()
            await browser.close()


@pytest.fixture
async def browser(request: pytest.FixtureRequest) -> AsyncIterator[Browser]:
    """Chromium for the pages of Maillon (workspace, widget); on failure, a screenshot and
    the HTML of each page and of its frames (the widget's iframe) in the artifacts."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            if failed(request):
                target = artifacts_dir(request)
                target.mkdir(parents=True, exist_ok=True)
                for n, context in enumerate(launched.contexts):
                    for m, page in enumerate(context.pages):
                        await page.screenshot(path=str(target / f"page-{n}-{m}.png"))
                        (target / f"page-{n}-{m}.html").write_text(await page.content())
                        for k, frame in enumerate(page.frames[1:], 1):
                            (target / f"page-{n}-{m}-frame-{k}.html").write_text(
                                await frame.content()
                            )
            await launched.close()


@pytest.fixture
def js_logs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """Where matrix-js-sdk clients write their log; copied to the artifacts on failure."""
    directory = tmp_path / "js"
    directory.mkdir()
    yield directory
    if failed(request):
        target = artifacts_dir(request)
        target.mkdir(parents=True, exist_ok=True)
        for log in directory.iterdir():
            (target / log.name).write_bytes(log.read_bytes())
