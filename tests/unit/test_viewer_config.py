"""The viewer's settings (pyjpip.transport.viewer_config) and the site's Content-Security-Policy
(pyjpip.transport.content_security), as the Site answers them."""

import json

import pytest

from pyjpip.transport.content_security import content_security_policy
from pyjpip.transport.site import Site
from pyjpip.transport.viewer_config import KEYS, ViewerConfig, origin


@pytest.mark.parametrize("given, expected", [
    ("https://PACS.example/", "https://pacs.example"),
    ("https://pacs.example:443", "https://pacs.example"),
    ("http://pacs.example:80", "http://pacs.example"),
    ("http://127.0.0.1:8042", "http://127.0.0.1:8042"),
    ("http://[::1]:8042", "http://[::1]:8042"),
])
def test_origins_are_serialised_as_browsers_do(given, expected):
    assert origin(given) == expected


@pytest.mark.parametrize("given, reason", [
    ("pacs.example", "only http and https"),
    ("ftp://pacs.example", "only http and https"),
    ("https://pacs.example/wado", "nothing more"),
    ("https://user:secret@pacs.example", "nothing more"),
    ("https://pacs.example?x=1", "nothing more"),
    ("https://*.example", "cannot hold"),
    ("https://pacs.example:99999", "port"),
    ("", "not an origin"),
])
def test_what_is_not_an_origin_is_refused_with_the_reason(given, reason):
    with pytest.raises(ValueError, match=reason):
        origin(given, "--viewer-pixel-origin")


def test_options_make_the_settings_and_refuse_what_does_not_fit():
    config = ViewerConfig.from_options(["https://pacs.example", "https://PACS.example:443"], [], ["https://portal.example"],
                                       ["https://pacs.example"], "https://id.example/realms/h", "viewer", "openid profile")
    assert config.pixel_origins == ("https://pacs.example",)
    document = json.loads(config.to_json())
    assert tuple(document) == KEYS and document["oidc"]["client_id"] == "viewer"
    with pytest.raises(ValueError, match="--viewer-token-origin .* not a --viewer-pixel-origin"):
        ViewerConfig.from_options(token_origins=["https://elsewhere.example"])
    with pytest.raises(ValueError, match="go together"):
        ViewerConfig.from_options(oidc_issuer="https://id.example")
    with pytest.raises(ValueError, match="more than 64"):
        ViewerConfig.from_options(pixel_origins=[f"https://h{i}.example" for i in range(65)])


def test_the_policy_names_exactly_what_the_settings_allow():
    none = content_security_policy(ViewerConfig())
    assert "connect-src 'self';" in none and "frame-ancestors 'self';" in none and "unsafe-eval'" not in \
        none.replace("wasm-unsafe-eval", "")
    config = ViewerConfig.from_options(["https://pacs.example"], ["https://other.example"], ["https://portal.example"],
                                       oidc_issuer="https://id.example/realms/h", oidc_client_id="viewer")
    policy = dict(d.strip().split(" ", 1) for d in content_security_policy(config).split(";"))
    assert policy["connect-src"] == "'self' https://pacs.example https://other.example https://id.example"
    assert policy["frame-ancestors"] == "'self' https://portal.example"
    assert content_security_policy(config, framing=False).count("frame-ancestors 'none'") == 1


def test_the_site_serves_its_settings_and_puts_the_policy_on_its_files_only(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html>")
    config = ViewerConfig.from_options(embed_origins=["https://portal.example"])
    site = Site(static_root=str(tmp_path), viewer=config)
    answer = site.handle("GET", "/viewer-config.json", "", {}, lambda n: b"")
    assert answer.status == 200 and json.loads(b"".join(answer.body)) == config.to_dict()
    page = site.handle("GET", "/", "", {}, lambda n: b"")
    headers = dict(page.headers)
    assert "frame-ancestors 'self' https://portal.example" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    jpip = site.handle("GET", "/jpip", "target=x", {}, lambda n: b"")
    assert "Content-Security-Policy" not in dict(jpip.headers)


@pytest.mark.cpython_only  # the production app (uvicorn, h11) is not in the browser's Python
def test_the_production_app_reads_the_same_settings_from_its_environment(monkeypatch):
    from pyjpip.transport.asgi import _viewer_from_environment

    monkeypatch.setenv("PYJPIP_VIEWER_PIXEL_ORIGINS", "https://pacs.example, https://other.example:8443")
    monkeypatch.setenv("PYJPIP_EMBED_ORIGINS", "https://portal.example")
    monkeypatch.setenv("PYJPIP_AUTH_ISSUER", "https://id.example/realms/h")
    assert _viewer_from_environment().oidc is None  # the server checks tokens; the viewer signs in only with a client id
    monkeypatch.setenv("PYJPIP_OIDC_CLIENT_ID", "viewer")
    config = _viewer_from_environment()
    assert config.pixel_origins == ("https://pacs.example", "https://other.example:8443")
    assert config.embed_origins == ("https://portal.example",)
    assert config.oidc.issuer == "https://id.example/realms/h" and config.oidc.client_id == "viewer"
