"""pyjpip.security's parts one by one: the token validator with a clock the test sets (leeway, several
issuers, discovery, key fetching bounds), scopes from each claim form, access policies, and the
suite's OpenID provider's own rules (PKCE, redirect URIs) that the browser tests rely on."""

import hashlib
import http.client
import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from identity_provider import IdentityProvider, pkce_pair
from pyjpip.errors import AccessPolicyError, InvalidTokenError, KeysUnavailableError
from pyjpip.security.access import AccessSettings, is_loopback
from pyjpip.security.authentication import Anonymous, TrustedHeader
from pyjpip.security.authorization import Authorizer, ClaimsPolicy, load_policy
from pyjpip.security.identity import ADMINISTER, READ, STORE, Identity, ScopeVocabulary
from pyjpip.security.tokens import TokenValidator, fetch_json

pytestmark = pytest.mark.cpython_only


class Clock:
    def __init__(self):
        self.now = time.time()
        self.ticks = 0.0

    def wall(self):
        return self.now

    def monotonic(self):
        return self.ticks


def validator(providers, clock=None, **options):
    clock = clock or Clock()
    return TokenValidator([p.issuer for p in providers], "pyjpip", clock=clock.wall, monotonic=clock.monotonic,
                          **options)


def test_clock_skew_within_the_leeway_is_forgiven_and_beyond_it_is_not(identity_provider):
    clock = Clock()
    check = validator([identity_provider], clock, leeway=30)
    expired = identity_provider.mint(expires_in=0)  # exp == now
    clock.now += 20
    assert check.validate(expired).subject == "alice"
    clock.now += 20
    with pytest.raises(InvalidTokenError, match=r"expired at .*\((39|40|41) s ago; leeway 30 s\)"):
        check.validate(expired)
    early = identity_provider.mint(not_before=20)
    clock.now -= 40
    assert check.validate(early)
    with pytest.raises(InvalidTokenError, match="not valid before"):
        check.validate(identity_provider.mint(not_before=100))
    with pytest.raises(InvalidTokenError, match="issued in the future"):
        check.validate(identity_provider.mint(issued_at=300))


def test_a_token_needs_exp_and_sub(identity_provider):
    check = validator([identity_provider])
    with pytest.raises(InvalidTokenError, match="no exp claim"):
        check.validate(identity_provider.mint(claims={"exp": None}))
    with pytest.raises(InvalidTokenError, match="no usable sub"):
        check.validate(identity_provider.mint(claims={"sub": None}))
    with pytest.raises(InvalidTokenError, match="not a signed JWT"):
        check.validate("abc.def")
    with pytest.raises(InvalidTokenError, match="over 16384"):
        check.validate("a" * 20000)


def test_several_issuers_each_with_its_own_keys():
    with IdentityProvider() as receiver, IdentityProvider(user="sam") as sender:
        check = validator([receiver, sender])
        assert check.validate(receiver.mint()).issuer == receiver.issuer
        assert check.validate(sender.mint()).subject == "sam"
        forged = sender.mint(issuer=receiver.issuer)  # the sender's key cannot speak for the receiver
        with pytest.raises(InvalidTokenError, match="unknown key|bad signature"):
            check.validate(forged)


def test_discovery_must_name_the_issuer_itself(identity_provider):
    def lying(url):
        document = fetch_json(url)
        if url.endswith("openid-configuration"):
            document["issuer"] = "http://elsewhere.example"
        return document

    check = TokenValidator([identity_provider.issuer], "pyjpip", fetch=lying)
    with pytest.raises(KeysUnavailableError, match="names issuer 'http://elsewhere.example'"):
        check.validate(identity_provider.mint())


def test_keys_come_over_https_only_without_redirects_and_bounded():
    with pytest.raises(KeysUnavailableError, match="https only"):
        fetch_json("http://idp.example/jwks")
    with pytest.raises(KeysUnavailableError, match="not an https URL"):
        fetch_json("file:///etc/passwd")
    with IdentityProvider() as provider:
        with pytest.raises(KeysUnavailableError, match="over 100 bytes"):
            fetch_json(provider.jwks_uri, maximum=100)
        with pytest.raises(KeysUnavailableError, match="answered 404"):
            fetch_json(provider.issuer + "/nothing")


def test_an_unreachable_issuer_is_not_asked_again_at_once():
    with IdentityProvider() as provider:
        token = provider.mint()
        issuer = provider.issuer
    calls = []

    def counting(url):
        calls.append(url)
        return fetch_json(url, timeout=2)

    clock = Clock()
    check = TokenValidator([issuer], "pyjpip", fetch=counting, monotonic=clock.monotonic)
    for _ in range(5):
        with pytest.raises(KeysUnavailableError):
            check.validate(token)
    assert len(calls) == 1
    clock.ticks += 31
    with pytest.raises(KeysUnavailableError):
        check.validate(token)
    assert len(calls) == 2


@pytest.mark.parametrize("claims, vocabulary, actions", [
    ({"scope": "openid pyjpip.read"}, ScopeVocabulary(), {READ}),
    ({"scp": ["pyjpip.read", "pyjpip.store"]}, ScopeVocabulary(), {READ, STORE}),
    ({"scope": "pyjpip.admin"}, ScopeVocabulary(), {READ, STORE, ADMINISTER}),
    ({"realm_access": {"roles": ["viewer"]}}, ScopeVocabulary(read="viewer", claim="realm_access.roles"), {READ}),
    ({"roles": "pyjpip.store"}, ScopeVocabulary(claim="roles"), {STORE}),
    ({"scope": 42}, ScopeVocabulary(), set()),
])
def test_scopes_from_each_claim_form(claims, vocabulary, actions):
    assert vocabulary.actions_of(vocabulary.scopes_in(claims)) == actions


def reader(claims):
    return Identity("u", "i", frozenset({"pyjpip.read"}), frozenset({READ}), claims)


def test_claims_policy_by_study_patient_and_group_patterns():
    policy = ClaimsPolicy.from_dict({"studies_claim": "studies", "patients_claim": "patients", "claim": "groups",
                                     "grants": {"cardio": {"patients": ["CARD-*"]}, "all": {"studies": ["*"]}}})
    authorizer = Authorizer(policy)
    assert authorizer.decide(reader({"studies": ["1.2.3"]}), READ, "1.2.3", "P").allowed
    assert not authorizer.decide(reader({"studies": ["1.2.3"]}), READ, "1.2.4", "P").allowed
    assert authorizer.decide(reader({"patients": "P1 P2"}), READ, "9.9", "P2").allowed
    assert authorizer.decide(reader({"groups": ["cardio"]}), READ, "9.9", "CARD-7").allowed
    assert not authorizer.decide(reader({"groups": ["cardio"]}), READ, "9.9", "ONC-7").allowed
    assert authorizer.decide(reader({"groups": ["all"]}), READ, "9.9", None).allowed
    refused = authorizer.decide(reader({}), READ, "1.2.3", "P")
    assert refused.status == 404 and "does not give study 1.2.3" in refused.reason
    admin = Identity("a", "i", frozenset(), frozenset({READ, STORE, ADMINISTER}), {})
    assert authorizer.decide(admin, READ, "1.2.3", "P").allowed
    scopeless = authorizer.decide(Identity("s", "i", frozenset(), frozenset({STORE}), {}), READ, "1.2.3")
    assert scopeless.status == 403 and "pyjpip.read" in scopeless.reason


def test_a_policy_that_is_wrong_is_said_at_load_and_one_that_fails_refuses(tmp_path):
    bad = tmp_path / "p.json"
    bad.write_text(json.dumps({"studies": ["x"]}))
    with pytest.raises(AccessPolicyError, match="unknown field"):
        load_policy(str(bad))
    with pytest.raises(AccessPolicyError, match="module:callable"):
        load_policy("no_such_thing")
    with pytest.raises(AccessPolicyError, match="No module named"):
        load_policy("no_such_module_xyz:policy")
    assert load_policy("fnmatch:fnmatchcase") is not None

    def failing(identity, study, patient):
        raise RuntimeError("database down")

    decision = Authorizer(failing).decide(reader({}), READ, "1.2.3", None)
    assert not decision.allowed and decision.status == 404


def test_settings_that_do_not_fit_together_are_refused():
    with pytest.raises(ValueError, match="--auth-audience"):
        AccessSettings(issuers=("https://idp.example",)).check()
    with pytest.raises(ValueError, match="choose one"):
        AccessSettings(issuers=("https://idp.example",), audience="a", no_auth=True).check()
    with pytest.raises(ValueError, match="--trusted-proxy"):
        AccessSettings(trusted_user_header="X-User").check()
    with pytest.raises(ValueError, match="choose one"):
        AccessSettings(trusted_proxies=("10.0.0.1",), trusted_user_header="X-User", no_auth=True).check()
    # A trusted proxy alone names clients (X-Forwarded-For); it is not a choice of authentication.
    alone = AccessSettings(trusted_proxies=("10.0.0.1",))
    alone.check()
    assert not alone.chosen
    with pytest.raises(ValueError, match="not an IP address"):
        AccessSettings(trusted_proxies=("proxy.example",), trusted_user_header="X-User").check()
    with pytest.raises(ValueError, match="ISSUER=URL"):
        AccessSettings(issuers=("https://a.example", "https://b.example"), audience="x",
                       jwks_urls=("https://a.example/jwks",)).check()
    both = AccessSettings(issuers=("https://a.example", "https://b.example"), audience="x",
                          jwks_urls=("https://b.example=https://keys.example/b",))
    assert both.jwks_uris() == {"https://b.example": "https://keys.example/b"}
    environment = AccessSettings.from_environment({"PYJPIP_AUTH_ISSUER": "https://a.example, https://b.example",
                                                   "PYJPIP_AUTH_AUDIENCE": "x", "PYJPIP_AUTH_LEEWAY": "5"})
    assert environment.issuers == ("https://a.example", "https://b.example") and environment.leeway == 5
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")


def test_trusted_header_and_anonymous_ways():
    header = TrustedHeader(["10.0.0.0/8"], "X-Remote-User", "X-Remote-Groups")
    identity = header.authenticate({"X-Remote-User": "ian", "X-Remote-Groups": "pyjpip.read,pyjpip.store"},
                                   "10.1.2.3")
    assert identity.subject == "ian" and identity.actions == {READ, STORE}
    assert header.authenticate({"X-Remote-User": "ian"}, "::ffff:10.1.2.3").actions == {READ}
    assert header.authenticate({"X-Remote-User": "ian"}, "192.0.2.1") is None
    with pytest.raises(InvalidTokenError):
        header.authenticate({"X-Remote-User": "a\nb"}, "10.1.2.3")
    assert Anonymous(loopback_only=False).authenticate({}, "192.0.2.1").anonymous


# -- the suite's OpenID provider keeps the rules a real one does ---------------------------------------

def _authorize(provider, **params):
    connection = http.client.HTTPConnection("127.0.0.1", provider.port, timeout=10)
    connection.request("GET", "/authorize?" + urlencode(params))
    response = connection.getresponse()
    response.read()
    return response


def _token(provider, **form):
    connection = http.client.HTTPConnection("127.0.0.1", provider.port, timeout=10)
    connection.request("POST", "/token", urlencode(form), {"Content-Type": "application/x-www-form-urlencoded"})
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def test_the_identity_provider_checks_redirect_uri_and_pkce():
    redirect = "http://127.0.0.1:9/viewer/"
    with IdentityProvider(clients={"viewer": [redirect]}, access_token_seconds=60) as provider:
        verifier, challenge = pkce_pair()
        assert challenge == __import__("base64").urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        common = dict(response_type="code", client_id="viewer", state="s1", code_challenge=challenge,
                      code_challenge_method="S256")
        assert _authorize(provider, **common, redirect_uri="http://evil.example/").status == 400
        plain = _authorize(provider, **{**common, "code_challenge_method": "plain"}, redirect_uri=redirect)
        assert "error=invalid_request" in plain.getheader("Location")
        response = _authorize(provider, **common, redirect_uri=redirect)
        query = parse_qs(urlsplit(response.getheader("Location")).query)
        assert response.status == 302 and query["state"] == ["s1"]
        code = query["code"][0]
        status, answer = _token(provider, grant_type="authorization_code", code=code, redirect_uri=redirect,
                                client_id="viewer", code_verifier="wrong" * 10)
        assert status == 400 and "code_verifier" in answer["error_description"]
        response = _authorize(provider, **common, redirect_uri=redirect)
        code = parse_qs(urlsplit(response.getheader("Location")).query)["code"][0]
        status, answer = _token(provider, grant_type="authorization_code", code=code, redirect_uri=redirect,
                                client_id="viewer", code_verifier=verifier)
        assert status == 200 and answer["token_type"] == "Bearer" and answer["expires_in"] == 60
        check = validator([provider])
        assert check.validate(answer["access_token"]).subject == "alice"
        status, again = _token(provider, grant_type="authorization_code", code=code, redirect_uri=redirect,
                               client_id="viewer", code_verifier=verifier)
        assert status == 400, "a code is used once"
        status, refreshed = _token(provider, grant_type="refresh_token", refresh_token=answer["refresh_token"])
        assert status == 200 and check.validate(refreshed["access_token"]).may(READ)


def test_a_channels_owner_is_kept_by_the_shared_session_folder(tmp_path):
    """Workers sharing --sessions learn who opened a channel from the folder, not from their memory."""
    from pyjpip.archive.sessions import FolderSessions

    one, other = FolderSessions(str(tmp_path)), FolderSessions(str(tmp_path))
    session = one.open("a.j2k", "tid", 0.0, 10)
    session.owner = "bearer:https://idp.example#alice"
    one.save(session)
    seen, _ = other.enter(session.cid, 0.0)
    try:
        assert seen.owner == "bearer:https://idp.example#alice"
    finally:
        other.leave(seen)


def test_a_root_whose_index_json_is_not_a_stores_gives_its_targets_to_no_study(tmp_path):
    """The demo site's data folder has an index.json that is a list of files: its images are bare targets."""
    from pyjpip.security.authorization import StudyDirectory

    (tmp_path / "index.json").write_text(json.dumps([{"file": "a.j2k"}]))
    assert StudyDirectory(None, str(tmp_path)).study_of_target("a.j2k") is None
    (tmp_path / "index.json").write_text("{not json")
    assert StudyDirectory(None, str(tmp_path)).study_of_target("a.j2k") is None
    (tmp_path / "index.json").write_text(json.dumps({"instances": {"1.2": {"image": "images/a.j2k",
                                                                           "study": "1.2.3"}}}))
    assert StudyDirectory(None, str(tmp_path)).study_of_target("/images/a.j2k") == "1.2.3"


def test_without_a_choice_only_this_host_is_answered_not_what_a_local_proxy_relays():
    """A proxy on the same host (nginx in front of a server left without an authentication choice)
    relays other hosts' requests from loopback: those carry its headers and are refused."""
    from pyjpip.errors import PyjpipError
    from pyjpip.security.authentication import Anonymous

    open_locally = Anonymous(loopback_only=True)
    assert open_locally.authenticate({}, "127.0.0.1").anonymous
    assert open_locally.authenticate({}, None).anonymous
    for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
        with pytest.raises(PyjpipError, match=f"relayed by a proxy \\({header}\\)"):
            open_locally.authenticate({header: "203.0.113.9"}, "127.0.0.1")
    with pytest.raises(PyjpipError, match="not 203.0.113.9"):
        open_locally.authenticate({}, "203.0.113.9")
    assert Anonymous().authenticate({"X-Forwarded-For": "203.0.113.9"}, "203.0.113.9").anonymous  # --no-auth
