"""Which URLs pyjpip fetches (pyjpip.network.url_policy): an allow-list of schemes and hosts, and the
forms of URL refused everywhere. URLs in, the URL or a typed refusal out; no network."""

import pytest

from pyjpip.errors import TransportError, UntrustedURLError
from pyjpip.network.url_policy import DEFAULT_POLICY, HostEntry, URLPolicy

SITE = URLPolicy.from_options(["pacs.example", "viewer.example:8443", "*.hospital.org", "bücher.example",
                               "[::1]:8000", "10.0.0.5"])


def refused(policy: URLPolicy, url: str) -> UntrustedURLError:
    with pytest.raises(UntrustedURLError) as caught:
        policy.check(url)
    return caught.value


@pytest.mark.parametrize("url", [
    "http://pacs.example/jpip?target=images/1.2.3/ct.j2k",
    "https://pacs.example/jpip?target=a.j2k&stream=3",
    "HTTP://PACS.Example/jpip?target=a.j2k",  # scheme and host compare without case
    "http://pacs.example./jpip?target=a.j2k",  # the root's final dot
    "http://pacs.example:8080/jpip",  # a host listed without a port: any port
    "http://pacs.example:/jpip",  # an empty port is the default one (RFC 3986 3.2.3)
    "https://viewer.example:8443/jpip",
    "http://ct.hospital.org/jpip",
    "http://a.b.hospital.org:9000/jpip",
    "http://xn--bcher-kva.example/jpip",  # an international name in its xn-- form, listed in Unicode
    "http://[::1]:8000/jpip",
    "http://[0:0::1]:8000/jpip",  # the same address written otherwise
    "http://10.0.0.5/jpip",
    "http://pacs.example/jpip?target=a%20b.j2k#frame",
])
def test_allowed(url):
    assert SITE.check(url) == url and SITE.allows(url)


@pytest.mark.parametrize("url, reason", [
    ("http://evil.example/jpip", "host evil.example:80 is not allowed (allowed hosts: pacs.example, "
                                 "viewer.example:8443, *.hospital.org, xn--bcher-kva.example, [::1]:8000, 10.0.0.5)"),
    ("http://pacs.example.evil.example/jpip", "host pacs.example.evil.example:80 is not allowed"),
    ("http://evilpacs.example/jpip", "is not allowed"),
    ("http://hospital.org/jpip", "host hospital.org:80 is not allowed"),  # *.domain: the names under it only
    ("http://hospital.org.evil.example/", "is not allowed"),
    ("http://viewer.example/jpip", "host viewer.example:80 is not allowed"),  # listed with port 8443 only
    ("https://viewer.example/jpip", "host viewer.example:443 is not allowed"),
    ("http://[::1]:8001/jpip", "host [::1]:8001 is not allowed"),
    ("http://10.0.0.6/jpip", "host 10.0.0.6:80 is not allowed"),
])
def test_hosts_outside_the_list_are_refused(url, reason):
    error = refused(SITE, url)
    assert reason in str(error) and error.url == url
    assert isinstance(error, TransportError)  # a PyjpipError callers already report


@pytest.mark.parametrize("url, reason", [
    ("file:///etc/passwd", "scheme 'file' is not allowed (allowed: http, https)"),
    ("FILE:///etc/passwd", "scheme 'file' is not allowed"),
    ("ftp://pacs.example/ct.j2k", "scheme 'ftp' is not allowed"),
    ("javascript:alert(1)", "scheme 'javascript' is not allowed"),
    ("data:text/plain;base64,SGVsbG8=", "scheme 'data' is not allowed"),
    ("gopher://pacs.example:70/_GET", "scheme 'gopher' is not allowed"),
    ("jpip://pacs.example/ct.j2k", "scheme 'jpip' is not allowed"),
    ("//pacs.example/jpip", "not an absolute URL"),
    ("pacs.example/jpip", "not an absolute URL"),
    ("http:/pacs.example/jpip", "names no host"),
    ("http:pacs.example", "names no host"),
    ("http:///jpip", "names no host"),
    ("http://user:secret@pacs.example/jpip", "carries credentials"),
    ("http://pacs.example@evil.example/jpip", "carries credentials"),
    ("http://@pacs.example/jpip", "carries credentials"),
    ("http://pacs.example:0/jpip", "port '0' is not a number from 1 to 65535"),
    ("http://pacs.example:65536/jpip", "port '65536'"),
    ("http://pacs.example:99999999999999999999/jpip", "is not a number from 1 to 65535"),
    ("http://pacs.example:-1/jpip", "port '-1'"),
    ("http://pacs.example:+80/jpip", "port '+80'"),
    ("http://pacs.example:http/jpip", "port 'http'"),
    ("http://pacs.example:80:81/jpip", "port '80:81'"),
    ("http://pacs.example/j pip", "holds a space"),
    ("http://pacs.example/jpip\r\nHost: evil.example", "holds a control character (U+000D)"),
    ("http://pacs.example/\x00", "holds a control character (U+0000)"),
    ("http://pacs.example/\x7f", "holds a control character (U+007F)"),
    ("\thttp://pacs.example/", "holds a control character (U+0009)"),
    ("http://pacs.example\\@evil.example/", "holds '\\\\' (U+005C)"),
    ("http://bücher.example/jpip", "holds 'ü' (U+00FC)"),  # international names arrive as xn--
    ("http://pаcs.example/jpip", "holds 'а' (U+0430)"),  # a Cyrillic a: a look-alike of pacs.example
    ("http://pacs。example/jpip", "(U+3002)"),  # an ideographic full stop, a dot to some resolvers
    ("http://ｐacs.example/jpip", "(U+FF50)"),  # a full-width letter
    ("http://pacs.example%2eevil.example/jpip", "is not a host name"),
    ("http://pacs..example/jpip", "has an empty label"),
    ("http://pacs.example../jpip", "has an empty label"),
    ("http://.pacs.example/jpip", "has an empty label"),
    ("http://-pacs.example/jpip", "is not a host name"),
    ("http://pacs-.example/jpip", "is not a host name"),
    ("http://" + "a" * 64 + ".example/", "is not a host name"),
    ("http://2130706433/jpip", "an IPv4 address written in a form that hides it"),
    ("http://0x7f000001/jpip", "hides it"),
    ("http://0x7f.0.0.1/jpip", "hides it"),
    ("http://0177.0.0.1/jpip", "hides it"),
    ("http://127.1/jpip", "hides it"),
    ("http://127.0.1/jpip", "hides it"),
    ("http://10.0.0.05/jpip", "hides it"),
    ("http://256.0.0.1/jpip", "hides it"),
    ("http://[::ffff:127.0.0.1]/jpip", "an IPv4 address written as IPv6"),
    ("http://[::ffff:7f00:1]/jpip", "an IPv4 address written as IPv6"),
    ("http://[::127.0.0.1]/jpip", "an IPv4 address written as IPv6"),
    ("http://[::1/jpip", "malformed"),
    ("http://[pacs.example]/jpip", ""),  # "malformed" from urlsplit or "not an IPv6 address": versions differ
    ("http://[fe80::1%25eth0]/jpip", "names a network interface"),
    ("http://[::1]x/jpip", ""),  # "is not a port", or "malformed" where urlsplit checks (Python 3.14)
    ("http://pacs.example/" + "a" * 8200, "characters long (at most 8192)"),
])
def test_malformed_and_hiding_urls_are_refused_with_or_without_a_list(url, reason):
    for policy in (DEFAULT_POLICY, SITE):
        error = refused(policy, url)
        assert reason in error.reason, (url, error.reason)
        assert str(error).startswith(repr(url[:200] + ("..." if len(url) > 200 else "")))  # names the URL


def test_a_long_url_is_named_by_its_start():
    error = refused(DEFAULT_POLICY, "ftp://pacs.example/" + "x" * 500)
    assert str(error).startswith("'ftp://pacs.example/xxx") and "...'" in str(error) and len(str(error)) < 300


def test_without_a_list_any_well_formed_http_host_is_allowed():
    for url in ("http://anything.example/jpip", "https://192.168.1.20:8443/jpip", "http://[2001:db8::1]/jpip",
                "http://localhost:8000/jpip?target=a.j2k", "http://pacs_1.internal/jpip"):
        assert DEFAULT_POLICY.check(url) == url
    assert not DEFAULT_POLICY.restricted and SITE.restricted


def test_schemes_can_be_narrowed_to_https_and_never_widened():
    secure = URLPolicy.from_options(None, ["HTTPS"])
    assert secure.check("https://pacs.example/jpip")
    assert "scheme 'http' is not allowed (allowed: https)" in refused(secure, "http://pacs.example/jpip").reason
    assert secure.restricted and secure.describe() == "schemes https; any host"
    for scheme in ("ftp", "file", "jpip", ""):
        with pytest.raises(ValueError, match="http and https only"):
            URLPolicy.from_options(None, [scheme or ","])


def test_options_may_be_repeated_or_comma_separated():
    policy = URLPolicy.from_options(["a.example, b.example", "c.example:81"], ["http", "https"])
    assert [str(h) for h in policy.hosts] == ["a.example", "b.example", "c.example:81"]
    assert policy.describe() == "schemes http, https; hosts a.example, b.example, c.example:81"


@pytest.mark.parametrize("entry, written", [
    ("PACS.Example.", "pacs.example"), ("pacs.example:8000", "pacs.example:8000"), ("*.Hospital.org", "*.hospital.org"),
    ("bücher.example", "xn--bcher-kva.example"), ("*.bücher.example:443", "*.xn--bcher-kva.example:443"),
    ("[::1]", "[::1]"), ("[0:0::1]:8000", "[::1]:8000"), ("192.168.0.1:80", "192.168.0.1:80"),
])
def test_host_entries_are_normalised(entry, written):
    assert str(HostEntry.parse(entry)) == written


@pytest.mark.parametrize("entry, reason", [
    ("http://pacs.example", "not a URL"), ("pacs.example/jpip", "not a URL"), ("user@pacs.example", "not a URL"),
    ("", "not a URL"), ("pacs.example:0", "1 to 65535"), ("pacs.example:http", "1 to 65535"),
    ("[::1", "[address]"), ("[nonsense]", "not an IPv6 address"), ("pacs..example", "empty label"),
    ("127.1", "hides it"), ("pacs example", "not a host name"),
])
def test_bad_host_entries_say_what_is_wrong(entry, reason):
    with pytest.raises(ValueError, match=reason):
        HostEntry.parse(entry)
