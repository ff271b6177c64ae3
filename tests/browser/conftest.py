"""Headless Debian Chromium driven by pytest-playwright, against the built site on a local server."""

import shutil
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from paths import ROOT
from local_site import ingested, served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
#: Keep Chromium from calling home: this machine has no network, and the tests forbid it anyway.
CHROMIUM_ARGS = ["--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic", "--disable-gpu"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # pytest-playwright cannot take an executable path; Playwright's own browser download is not possible here.
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": [*browser_type_launch_args.get("args", []), *CHROMIUM_ARGS]}


def wait_for_function_under_csp(page):
    """page.wait_for_function without eval in the page: Playwright's own evaluates its predicate with
    eval, which the site's Content-Security-Policy (script-src without 'unsafe-eval') forbids, as it
    should. This polls with page.evaluate (DevTools evaluation, not subject to the page's CSP), so the
    suite runs the viewer under its real policy rather than with the policy bypassed."""
    import time

    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    def wait_for_function(expression, arg=None, timeout=None, polling=None):
        deadline = time.monotonic() + (30_000 if timeout is None else timeout) / 1000
        interval = polling / 1000 if isinstance(polling, (int, float)) else 0.05
        while True:
            try:
                value = page.evaluate(expression, arg)
            except PlaywrightError as error:  # the page navigated meanwhile (a sign-in's return): ask the new one
                if "context was destroyed" not in str(error) and "navigat" not in str(error):
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise PlaywrightTimeoutError(f"wait_for_function: {expression[:200]} still false after {timeout} ms")
            time.sleep(interval)

    return wait_for_function


@pytest.fixture
def page(page):
    """pytest-playwright's page, its wait_for_function working under the site's CSP."""
    page.wait_for_function = wait_for_function_under_csp(page)
    return page


@pytest.fixture(scope="session")
def site():
    """The dev server over static/ on a free local port; yields its base URL."""
    with served() as base:
        yield base


@dataclass
class PageWatch:
    """What a page did that a test must know: requests, blocked requests, console errors."""

    origin: str
    also: set = field(default_factory=set)  # other local origins a test allows (a sender's JPIP server)
    requests: list = field(default_factory=list)
    blocked: list = field(default_factory=list)
    errors: list = field(default_factory=list)


@pytest.fixture
def watched_page(page, site):
    """A page that may only talk to the local server: anything else is blocked and fails the test."""
    origin = urlsplit(site)
    watch = PageWatch(origin=f"{origin.scheme}://{origin.netloc}")

    def guard(route):
        url = route.request.url
        watch.requests.append(url)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.scheme in ("data", "blob") or origin == watch.origin or origin in watch.also:
            route.continue_()
        else:
            watch.blocked.append(url)
            route.abort("blockedbyclient")

    page.context.route("**/*", guard)
    page.on("console", lambda message: message.type == "error" and watch.errors.append(message.text))
    page.on("pageerror", lambda error: watch.errors.append(f"uncaught: {error}"))
    page.watch = watch
    yield page
    assert watch.blocked == [], f"requests left the machine: {watch.blocked}"


@pytest.fixture(scope="session")
def jpip_site():
    """The site and JPIP for static/data from one server, as `pyjpip serve` runs them."""
    with served(ROOT / "static" / "data") as base:
        yield base


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory):
    """The demo study set (what `build.py serve` shows), made, ingested and served with the site;
    yields (base URL, sources folder, store folder). Made once: several test modules look at it."""
    import subprocess
    import sys

    sources, store = tmp_path_factory.mktemp("demo-sources"), tmp_path_factory.mktemp("demo-store")
    subprocess.run([sys.executable, str(ROOT / "tools" / "demo_study.py"), str(sources)], check=True, capture_output=True)
    with ingested(sources, store) as base:
        yield base, sources, store
