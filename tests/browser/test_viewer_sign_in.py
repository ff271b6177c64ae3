"""The viewer against a server that wants bearer tokens (issue 23): it shows "Sign in", signs in with
OpenID Connect (authorization code + PKCE S256) at a real provider (tests/identity_provider.py) and
opens the study; it refreshes its token before expiry; a token that expires with no way to refresh it
shows "Session expired: sign in again" with the layout kept, and a new token brings the images back."""

import time

import pydicom
import pytest

from identity_provider import IdentityProvider
from local_site import served
from test_first_page import BOOT_TIMEOUT_MS

pytestmark = pytest.mark.cpython_only
AUDIENCE = "pyjpip"


@pytest.fixture
def study(tmp_path):
    """One hollow CT study (2048 x 2048: real size asks for more) in a fresh store, ingested once the
    server's URL is known: ``ingest(base)``."""
    from pydicom.uid import generate_uid

    from paths import ROOT

    from pyjpip.dicom.ingest import ingest

    sources, store = tmp_path / "sources", tmp_path / "store"
    sources.mkdir()
    store.mkdir()
    uid = generate_uid(entropy_srcs=["signed study"])
    ct = pydicom.dcmread(ROOT / "static" / "data" / "ct_phantom_2048.dcm")
    ct.StudyInstanceUID = uid
    ct.save_as(sources / "ct.dcm")
    (store / "index.json").write_text('{"instances": {}}')

    def ingest_at(base):
        assert not ingest([str(sources)], str(store), base.rstrip("/")).failed

    return uid, store, ingest_at


def signed_viewer(idp, store, authorization=None):
    """The site and its store behind bearer tokens from ``idp`` (no clock leeway), the viewer signing in there."""
    from pyjpip.security.access import AccessSettings
    from pyjpip.transport.viewer_config import ViewerConfig

    access = AccessSettings(issuers=(idp.issuer,), audience=AUDIENCE, leeway=0)
    config = ViewerConfig.from_options(oidc_issuer=idp.issuer, oidc_client_id="viewer", oidc_scope="openid pyjpip.read")
    return served(store, viewer=config, access=access, authorization=authorization)


def signed_in(page, idp):
    """Until the provider has exchanged a code for tokens and the page is back on the viewer's study."""
    deadline = time.monotonic() + 30
    while ("POST", "/token") not in idp.events and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    assert ("POST", "/token") in idp.events, idp.events
    page.wait_for_function("location.search.includes('study=') && !location.search.includes('code=')", timeout=30_000)
    page.wait_for_load_state()


def painted(page):
    page.wait_for_function("['painted', 'error'].includes(document.body.dataset.state)", timeout=BOOT_TIMEOUT_MS)
    assert page.evaluate("document.body.dataset.state") == "painted", page.locator("#message").text_content()


def test_the_viewer_says_sign_in_signs_in_and_opens_the_study(watched_page, study):
    uid, store, ingest_at = study
    with IdentityProvider(audience=AUDIENCE) as idp, signed_viewer(idp, store) as viewer:
        ingest_at(viewer)
        idp.register("viewer", viewer)
        page = watched_page
        page.watch.origin = viewer.rstrip("/")
        page.watch.also.add(idp.issuer)
        page.goto(f"{viewer}?study={uid}&layout=1x2")
        button = page.locator("#sign-in-button")
        page.wait_for_function("document.body.dataset.state === 'sign-in' || document.body.dataset.state === 'error'",
                               timeout=BOOT_TIMEOUT_MS)
        assert page.evaluate("document.body.dataset.state") == "sign-in", page.locator("#message").text_content()
        button.wait_for(state="visible", timeout=BOOT_TIMEOUT_MS)
        assert "Sign in" in page.locator("#sign-in").text_content()
        button.click()
        signed_in(page, idp)
        assert page.url == f"{viewer}?study={uid}&layout=1x2"
        painted(page)
        assert page.locator("#sign-in").is_hidden()
        assert page.locator("#viewport").get_attribute("data-layout") == "1x2"
        assert ("POST", "/token") in idp.events and ("GET", "/authorize") in idp.events
        kept = page.evaluate("({session: sessionStorage.getItem('pyjpip.session'), local: localStorage.length})")
        assert kept["local"] == 0 and "access_token" not in page.url and "code=" not in page.url
        assert page.watch.errors == []


def test_the_token_is_refreshed_before_it_expires(watched_page, study):
    uid, store, ingest_at = study
    seen = []
    # 40 s tokens: the viewer refreshes 30 s before expiry, so 10 s after signing in.
    with IdentityProvider(audience=AUDIENCE, access_token_seconds=40) as idp, \
            signed_viewer(idp, store, authorization=seen) as viewer:
        ingest_at(viewer)
        idp.register("viewer", viewer)
        page = watched_page
        page.watch.origin = viewer.rstrip("/")
        page.watch.also.add(idp.issuer)
        page.set_viewport_size({"width": 400, "height": 360})  # fitted at 1/8: real size asks for more
        page.goto(f"{viewer}?study={uid}")
        page.locator("#sign-in-button").click(timeout=BOOT_TIMEOUT_MS)
        signed_in(page, idp)
        painted(page)
        first = {value for _, value in seen if value}
        kept = "JSON.parse(sessionStorage.getItem('pyjpip.session')).token"
        signed = page.evaluate(kept)
        assert {f"Bearer {signed}"} == first
        page.wait_for_function(f"{kept} !== {signed!r}", timeout=30_000)  # refreshed (10 s after signing in)
        assert idp.events.count(("POST", "/token")) >= 2, "no refresh_token grant before expiry"
        page.wait_for_timeout(200)  # the worker is told by message
        page.locator(".cell").first.focus()
        page.keyboard.press("r")  # real size: new JPIP requests, with the refreshed token
        page.wait_for_function("(() => { const c = document.querySelector('.cell canvas.detail');"
                               " return c && !c.hidden && c.dataset.reduce === '0' && c.dataset.final === 'true'; })()",
                               timeout=60_000)
        assert page.locator("#sign-in").is_hidden()
        later = [value for path, value in seen if path.startswith("/jpip") and value and value not in first]
        assert later, "the JPIP requests after the refresh did not carry the new token"


def test_an_expired_token_says_session_expired_and_keeps_the_layout(watched_page, study):
    uid, store, ingest_at = study
    with IdentityProvider(audience=AUDIENCE) as idp, signed_viewer(idp, store) as viewer:
        ingest_at(viewer)
        page = watched_page
        page.watch.origin = viewer.rstrip("/")
        page.watch.also.add(idp.issuer)
        short = idp.mint(expires_in=8)  # as an embedder would give it: no refresh token
        page.goto(f"{viewer}?study={uid}&layout=1x2#access_token={short}&expires_in=8")
        painted(page)
        time.sleep(9)
        page.locator(".cell").first.focus()
        page.keyboard.press("r")  # new JPIP requests: the server refuses the expired token
        expired = page.locator("#sign-in")
        expired.wait_for(state="visible", timeout=60_000)
        assert "Session expired: sign in again" in expired.text_content()
        assert page.locator("#viewport").get_attribute("data-layout") == "1x2"
        assert page.locator(".cell").count() == 2
        # A new token (what the embedder's {command: "token"} does): the viewport asks again and paints.
        page.evaluate("(token) => import('/session.js').then((m) => m.setToken(token))", idp.mint())
        page.wait_for_function("[...document.querySelectorAll('.cell .failure')].every((f) => f.hidden)",
                               timeout=60_000)
        assert expired.is_hidden()
        page.wait_for_function("document.querySelector('.cell').dataset.state === 'painted'", timeout=60_000)
