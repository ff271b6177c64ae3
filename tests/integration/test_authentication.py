"""Authentication and authorization of every HTTP surface (issue 23 points 1 and 2), with real signed
JWTs from the suite's own OpenID provider (tests/identity_provider.py) and its JWKS, through the dev
server and the production app (`pyjpip serve --workers`): each bad token a 401 that says what was
wrong, scopes, per-study access (lists filtered, another study 404, its JPIP target refused, another
user's channel refused), the trusted-proxy header, the refusal to start open on a public address,
and the audit messages of each access, refusal and failed login."""

import http.client
import json
import shutil
import subprocess
import sys
import time

import pydicom
import pytest
from pydicom.data import get_testdata_file

from identity_provider import IdentityProvider
from network_support import free_port
from paths import ROOT
from serving import dev_server, production
from pyjpip.dicom.ingest import ingest
from pyjpip.security import audit
from pyjpip.security.access import AccessSettings

pytestmark = pytest.mark.cpython_only

AUDIENCE = "pyjpip-test"
CT, MR = "CT_small.dcm", "MR_small_jp2klossless.dcm"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An ingested store of two studies of two patients; yields (root, {name: dataset}, {name: target})."""
    sources = tmp_path_factory.mktemp("auth-sources")
    for name in (CT, MR):
        shutil.copy(get_testdata_file(name), sources / name)
    root = tmp_path_factory.mktemp("auth-store")
    report = ingest([str(sources)], str(root), "http://store.test")
    assert not report.failed, report.failed
    shutil.copy(ROOT / "static" / "data" / "ct_phantom_2048.j2k", root / "bare.j2k")  # a target no study claims
    datasets = {name: pydicom.dcmread(sources / name) for name in (CT, MR)}
    index = json.loads((root / "index.json").read_text())["instances"]
    targets = {name: index[str(ds.SOPInstanceUID)]["image"] for name, ds in datasets.items()}
    return root, datasets, targets


@pytest.fixture(scope="module")
def idp():
    with IdentityProvider(audience=AUDIENCE, user="alice", scope="pyjpip.read") as provider:
        yield provider


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("policy") / "policy.json"
    path.write_text(json.dumps({"studies_claim": "pyjpip_studies", "patients_claim": "pyjpip_patients"}))
    return path


def settings(idp, policy_file, audit_file=None, **more) -> AccessSettings:
    return AccessSettings(issuers=(idp.issuer,), audience=AUDIENCE, access_policy=str(policy_file),
                          audit_file=str(audit_file) if audit_file else None, **more)


class Server:
    """A running server of either kind and where its audit messages go."""

    def __init__(self, address, messages):
        self.address = address
        self.messages = messages

    def request(self, path, token=None, headers=None, method="GET", body=None):
        connection = http.client.HTTPConnection(*self.address, timeout=60)
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = f"Bearer {token}"
        connection.request(method, path, body=body, headers=sent)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response, data


@pytest.fixture(scope="module", params=["dev", "production"])
def server(request, store, idp, policy_file, tmp_path_factory):
    root = store[0]
    if request.param == "dev":
        trail = audit.AuditTrail.in_memory()
        with dev_server(root, ROOT / "static", access=settings(idp, policy_file), audit_trail=trail) as address:
            yield Server(address, lambda: trail.messages)
    else:
        audit_file = tmp_path_factory.mktemp("audit") / "audit.log"
        extra = ["--auth-issuer", idp.issuer, "--auth-audience", AUDIENCE, "--access-policy", str(policy_file),
                 "--audit-file", str(audit_file)]
        with production(root, ROOT / "static", workers=1, extra=extra) as running:
            def messages():
                lines = audit_file.read_text().splitlines() if audit_file.exists() else []
                return [audit.parse(line) for line in lines]
            yield Server(running.address, messages)


def event(message, key):
    """A field of an audit message, whether an AuditMessage (in memory) or one read back from a file."""
    if isinstance(message, dict):
        return message[key]
    if key == "detail":
        return message.detail
    if key == "participants":
        return [{"UserID": p.user_id} for p in message.participants]
    if key == "objects":
        return [{"id": o.id} for o in message.objects]
    return getattr(message, key)


def wait_for(messages, predicate, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [m for m in messages() if predicate(m)]
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"no such audit message among {len(messages())}")


def challenge(response) -> str:
    return response.getheader("WWW-Authenticate") or ""


def studies_claim(*datasets):
    return {"pyjpip_studies": [str(d.StudyInstanceUID) for d in datasets]}


# -- authentication: each bad token a 401 saying what was wrong ------------------------------------------

def test_no_token_is_401_with_a_bearer_challenge(server):
    response, body = server.request("/dicomweb/studies")
    assert response.status == 401
    assert challenge(response).startswith('Bearer realm="pyjpip"') and "error=" not in challenge(response)
    assert b"no token" in body
    response, _ = server.request("/jpip?target=bare.j2k&fsiz=64,64")
    assert response.status == 401
    for path in ("/data/index.json", "//data/index.json", "/%64ata/mr_small_jp2k.dcm", "/./data/index.json"):
        response, _ = server.request(path)
        assert response.status in (401, 404) and response.status != 200, path
    assert server.request("/data/index.json")[0].status == 401, "the site's data files need read access"
    response, _ = server.request("/index.html")
    assert response.status == 200, "the viewer's own files stay public, so it can load and sign in"


@pytest.mark.parametrize("make, words", [
    (lambda p: p.mint(expires_in=-600), "expired at"),
    (lambda p: p.mint(not_before=600), "not valid before"),
    (lambda p: p.mint(audience="someone-else"), "audience 'someone-else' is not 'pyjpip-test'"),
    (lambda p: p.mint(issuer="http://evil.example"), "issuer 'http://evil.example' is not trusted"),
    (lambda p: p.mint(kid="forged-kid"), "unknown key: kid 'forged-kid'"),
    (lambda p: p.mint_alg_none(), "algorithm 'none' is not accepted"),
    (lambda p: p.mint_hs256_with_public_key(), "algorithm 'HS256' is not accepted"),
    (lambda p: p.mint(header={"kid": "ec-1"}), "is an EC key, which cannot verify RS256"),
    (lambda p: p.mint()[:-8] + "AAAAAAAA", "bad signature"),
], ids=["expired", "not-yet-valid", "audience", "issuer", "unknown-kid", "alg-none", "hs256-confusion",
        "key-type", "signature"])
def test_a_bad_token_is_401_saying_what_was_wrong(server, idp, make, words):
    token = make(idp)
    for path in ("/dicomweb/studies", "/jpip?target=bare.j2k&fsiz=64,64"):
        response, body = server.request(path, token)
        assert response.status == 401, (path, body)
        assert 'error="invalid_token"' in challenge(response)
        assert words in body.decode(), body
        assert words.split("'")[0] in challenge(response)
    failures = wait_for(server.messages, lambda m: event(m, "event_id") == "110114"
                        and event(m, "outcome") == audit.MINOR_FAILURE and words in (event(m, "detail") or ""))
    assert failures


def test_a_good_token_of_either_key_type_is_accepted_and_the_login_audited(server, idp, store):
    _, datasets, _ = store
    for key in ("rsa", "ec"):
        token = idp.mint(key=key, subject=f"carol-{key}", claims=studies_claim(datasets[CT]))
        response, body = server.request("/dicomweb/studies", token)
        assert response.status == 200, body
        wait_for(server.messages, lambda m: event(m, "event_id") == "110114" and event(m, "outcome") == 0
                 and any(p["UserID"] == f"carol-{key}" for p in event(m, "participants")))


def test_unknown_kids_do_not_make_the_server_hammer_the_identity_provider(server, idp):
    server.request("/dicomweb/studies", idp.mint())  # keys fetched
    before = idp.jwks_requests
    for n in range(20):
        response, _ = server.request("/dicomweb/studies", idp.mint(kid=f"made-up-{n}"))
        assert response.status == 401
    assert idp.jwks_requests - before <= 1, "one refetch for an unknown kid, then none for refetch_seconds"


# -- scopes ----------------------------------------------------------------------------------------------

def test_a_token_without_the_read_scope_is_403_insufficient_scope(server, idp, store):
    _, datasets, _ = store
    token = idp.mint(scope="pyjpip.store", claims=studies_claim(datasets[CT]))
    response, body = server.request("/dicomweb/studies", token)
    assert response.status == 403
    assert 'error="insufficient_scope"' in challenge(response) and 'scope="pyjpip.read"' in challenge(response)
    assert b"lacks scope 'pyjpip.read'" in body
    response, _ = server.request("/jpip?target=bare.j2k&fsiz=64,64", token)
    assert response.status == 403
    wait_for(server.messages, lambda m: event(m, "event_id") == "110113" and event(m, "outcome") == 4)


# -- per-study access ------------------------------------------------------------------------------------

def test_lists_show_only_the_studies_the_policy_gives(server, idp, store):
    _, datasets, _ = store
    ct, mr = datasets[CT], datasets[MR]
    response, body = server.request("/dicomweb/studies", idp.mint(claims=studies_claim(ct)))
    assert response.status == 200
    assert [s["0020000D"]["Value"][0] for s in json.loads(body)] == [ct.StudyInstanceUID]
    by_patient = idp.mint(claims={"pyjpip_patients": [str(mr.PatientID)]})
    assert [s["0020000D"]["Value"][0] for s in json.loads(server.request("/dicomweb/studies", by_patient)[1])] \
        == [mr.StudyInstanceUID]
    nothing = idp.mint()
    assert json.loads(server.request("/dicomweb/studies", nothing)[1]) == []
    admin = idp.mint(scope="pyjpip.admin")
    assert len(json.loads(server.request("/dicomweb/studies", admin)[1])) == 2
    wait_for(server.messages, lambda m: event(m, "event_id") == "110112" and event(m, "outcome") == 0)


def test_another_studys_metadata_and_hollow_objects_are_404(server, idp, store):
    _, datasets, _ = store
    ct, mr = datasets[CT], datasets[MR]
    token = idp.mint(subject="dora", claims=studies_claim(ct))
    ok, body = server.request(f"/dicomweb/studies/{ct.StudyInstanceUID}/metadata", token)
    assert ok.status == 200 and pydicom.Dataset.from_json(json.loads(body)[0]).PatientID == ct.PatientID
    for path in (f"/dicomweb/studies/{mr.StudyInstanceUID}/metadata",
                 f"/dicomweb/studies/{mr.StudyInstanceUID}/series",
                 f"/dicomweb/studies/{mr.StudyInstanceUID}/series/{mr.SeriesInstanceUID}/instances/"
                 f"{mr.SOPInstanceUID}"):
        response, body = server.request(path, token)
        missing, _ = server.request(path.replace(str(mr.StudyInstanceUID), "1.2.3.4.5"), token)
        assert response.status == missing.status == 404, "a study it may not see is as one that does not exist"
        assert b"no such study" in body
    accessed = wait_for(server.messages, lambda m: event(m, "event_id") == "110103" and event(m, "outcome") == 0
                        and any(p["UserID"] == "dora" for p in event(m, "participants")))
    assert any(o["id"] == ct.StudyInstanceUID for m in accessed for o in event(m, "objects"))
    refused = wait_for(server.messages, lambda m: event(m, "event_id") == "110103" and event(m, "outcome") == 4
                       and any(p["UserID"] == "dora" for p in event(m, "participants")))
    assert "does not give study" in event(refused[0], "detail")


def test_a_jpip_target_belongs_to_its_study(server, idp, store):
    _, datasets, targets = store
    ct = datasets[CT]
    token = idp.mint(subject="erin", claims=studies_claim(ct))
    response, body = server.request(f"/jpip?target={targets[CT]}&fsiz=64,64&type=jpp-stream", token)
    assert response.status == 200, body
    response, body = server.request(f"/jpip?target={targets[MR]}&fsiz=64,64&type=jpp-stream", token)
    assert response.status == 404 and b"does not exist" in body
    response, _ = server.request(f"/jpip/{targets[MR]}?fsiz=64,64", token)  # the path form too
    assert response.status == 404
    response, _ = server.request("/jpip?target=bare.j2k&fsiz=64,64", token)
    assert response.status == 200, "a target no study claims needs only the read scope"
    for _ in range(3):  # one access message per identity and target, not one per request
        server.request(f"/jpip?target={targets[CT]}&fsiz=128,128&type=jpp-stream", token)
    accessed = wait_for(server.messages, lambda m: event(m, "event_id") == "110103" and event(m, "outcome") == 0
                        and f"JPIP target {targets[CT]}" in (event(m, "detail") or "")
                        and any(p["UserID"] == "erin" for p in event(m, "participants")))
    assert len(accessed) == 1
    wait_for(server.messages, lambda m: event(m, "event_id") == "110103" and event(m, "outcome") == 4
             and f"JPIP target {targets[MR]}" in (event(m, "detail") or ""))


def test_a_channel_opened_by_one_user_is_refused_to_another(server, idp, store):
    _, datasets, targets = store
    claims = studies_claim(datasets[CT])
    frank, grace = idp.mint(subject="frank", claims=claims), idp.mint(subject="grace", claims=claims)
    response, _ = server.request(f"/jpip?target={targets[CT]}&fsiz=64,64&cnew=http&type=jpp-stream", frank)
    assert response.status == 200
    cid = response.getheader("JPIP-cnew").split("cid=")[1].split(",")[0]
    response, body = server.request(f"/jpip?cid={cid}&fsiz=128,128", grace)
    assert response.status == 403 and b"opened by another user" in body
    response, body = server.request(f"/jpip?cid={cid}&cclose={cid}", grace)
    assert response.status == 403
    wait_for(server.messages, lambda m: event(m, "event_id") == "110113" and "opened by another user"
             in (event(m, "detail") or "") and any(p["UserID"] == "grace" for p in event(m, "participants")))
    response, _ = server.request(f"/jpip?cid={cid}&fsiz=128,128", frank)
    assert response.status == 200, "the owner's channel is still open and usable"
    response, _ = server.request(f"/jpip?cid={cid}&cclose={cid}", frank)
    assert response.status == 200


def test_cors_preflight_allows_the_authorization_header(server):
    response, _ = server.request("/jpip", method="OPTIONS", headers={
        "Origin": "https://portal.example", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert response.status == 204
    assert "Authorization" in response.getheader("Access-Control-Allow-Headers")


# -- keys rotated at the identity provider ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["dev", "production"])
def test_a_rotated_key_is_picked_up_and_the_old_one_refused_without_restart(kind, store, tmp_path):
    root = store[0]
    with IdentityProvider(audience=AUDIENCE) as provider:
        if kind == "dev":
            context = dev_server(root, access=AccessSettings(issuers=(provider.issuer,), audience=AUDIENCE))
        else:
            context = production(root, workers=1, extra=["--auth-issuer", provider.issuer, "--auth-audience",
                                                         AUDIENCE, "--auth-jwks-url", provider.jwks_uri])
        with context as running:
            server = Server(running if kind == "dev" else running.address, None)
            old = provider.mint()
            assert server.request("/jpip?target=bare.j2k&fsiz=64,64", old)[0].status == 200
            provider.rotate()
            new = provider.mint()
            response, body = server.request("/jpip?target=bare.j2k&fsiz=64,64", new)
            assert response.status == 200, body
            response, body = server.request("/jpip?target=bare.j2k&fsiz=64,64", provider.mint(kid="rsa-1"))
            assert response.status == 401
            response, body = server.request("/jpip?target=bare.j2k&fsiz=64,64", old)
            assert response.status == 401 and b"unknown key: kid 'rsa-1'" in body


# -- trusted proxy header --------------------------------------------------------------------------------

def test_a_trusted_proxy_header_is_honoured_only_from_the_pinned_address(store, policy_file):
    root, datasets, targets = store
    ct = datasets[CT]
    pinned = AccessSettings(trusted_proxies=("127.0.0.0/8",), trusted_user_header="X-Forwarded-User",
                            trusted_scopes_header="X-Forwarded-Groups")
    trail = audit.AuditTrail.in_memory()
    with dev_server(root, access=pinned, audit_trail=trail) as address:
        server = Server(address, lambda: trail.messages)
        response, body = server.request("/dicomweb/studies", headers={"X-Forwarded-User": "hana",
                                                                      "X-Forwarded-Groups": "pyjpip.read"})
        assert response.status == 200 and len(json.loads(body)) == 2
        response, _ = server.request(f"/dicomweb/studies/{ct.StudyInstanceUID}/metadata",
                                     headers={"X-Forwarded-User": "hana", "X-Forwarded-Groups": "other"})
        assert response.status == 403, "the proxy's groups carry no read scope"
        assert server.request("/dicomweb/studies")[0].status == 401
        assert any(p.user_id == "hana" for m in trail.messages for p in m.participants)
        for _ in range(2):  # the default policy: any reader; the access is audited once, with its study
            response, _ = server.request(f"/jpip?target={targets[CT]}&fsiz=64,64", headers={"X-Forwarded-User": "hana"})
            assert response.status == 200
        (accessed,) = [m for m in trail.messages if m.event_id == "110103" and f"JPIP target {targets[CT]}" in m.detail]
        assert [o.id for o in accessed.objects if o.id == ct.StudyInstanceUID] and accessed.outcome == audit.SUCCESS
    elsewhere = AccessSettings(trusted_proxies=("192.0.2.10",), trusted_user_header="X-Forwarded-User")
    with dev_server(root, access=elsewhere) as address:
        response, body = Server(address, None).request("/dicomweb/studies", headers={"X-Forwarded-User": "admin"})
        assert response.status == 401, "from a peer that is not the pinned proxy the header is ignored"
        assert b"no token" in body


# -- starting: a public address needs a choice -----------------------------------------------------------

@pytest.mark.parametrize("extra", [[], ["--workers", "1"]], ids=["dev", "production"])
def test_serve_on_a_public_address_without_an_authentication_choice_refuses_to_start(store, extra):
    port = free_port()
    result = subprocess.run([sys.executable, "-m", "pyjpip", "serve", str(store[0]), "--host", "0.0.0.0",
                             "--port", str(port), *extra], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "--auth-issuer" in line and "--trusted-proxy" in line and "--no-auth" in line, line


def test_serve_on_loopback_without_a_choice_says_it_is_open(store):
    from network_support import pyjpip_serve

    with pyjpip_serve(store[0]) as running:
        deadline = time.monotonic() + 10
        while "loopback only" not in running.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "no authentication: loopback only" in running.log.read_text()
        response, _ = Server(("127.0.0.1", running.port), None).request("/dicomweb/studies")
        assert response.status == 200


def test_an_open_server_refuses_clients_not_on_its_host(store):
    """Without a choice the Site answers only loopback peers (an app started by hand on a public
    address still serves no one else)."""
    from pyjpip.transport.site import make_site

    site = make_site(None, str(store[0]))
    response = site.handle("GET", "/dicomweb/studies", "", {}, lambda n: b"", peer="192.0.2.7")
    assert response.status == 401 and b"only clients on its own host" in b"".join(response.body)
    assert site.handle("GET", "/dicomweb/studies", "", {}, lambda n: b"", peer="127.0.0.1").status == 200
    site = make_site(None, str(store[0]), access=AccessSettings(no_auth=True))
    assert site.handle("GET", "/dicomweb/studies", "", {}, lambda n: b"", peer="192.0.2.7").status == 200


def test_the_site_data_is_served_to_a_reader(server, idp):
    response, body = server.request("/data/index.json", idp.mint(subject="ivy"))
    assert response.status == 200 and json.loads(body)


# -- a sender's Pixel Data Provider URLs for a receiver's users ------------------------------------------

def test_a_sender_that_trusts_the_receivers_issuer_serves_the_receivers_users(store):
    """The sender's JPIP server trusts its own IdP and the receiver's (--auth-issuer twice): a receiver's
    clinician's token opens the pixels a pushed hollow object points at; a token of a third IdP does not."""
    root, _, targets = store
    with IdentityProvider(audience=AUDIENCE, user="sender-staff") as own, \
            IdentityProvider(audience=AUDIENCE, user="receiver-clinician") as receiver, \
            IdentityProvider(audience=AUDIENCE, user="stranger") as third:
        access = AccessSettings(issuers=(own.issuer, receiver.issuer), audience=AUDIENCE)
        with dev_server(root, access=access) as address:
            server = Server(address, None)
            path = f"/jpip?target={targets[CT]}&fsiz=64,64&type=jpp-stream"
            assert server.request(path, own.mint())[0].status == 200
            assert server.request(path, receiver.mint())[0].status == 200
            response, body = server.request(path, third.mint())
            assert response.status == 401 and b"is not trusted" in body


# -- the production app configured by its environment ----------------------------------------------------

def test_the_production_app_takes_its_access_settings_from_the_environment(store, idp, policy_file, tmp_path):
    import os

    from network_support import wait_for_port

    root, datasets, _ = store
    port = free_port()
    audit_file = tmp_path / "audit.log"
    env = {**os.environ, "PYJPIP_ROOT": str(root), "PYJPIP_AUTH_ISSUER": idp.issuer, "PYJPIP_AUTH_AUDIENCE": AUDIENCE,
           "PYJPIP_AUTH_ACCESS_POLICY": str(policy_file), "PYJPIP_AUDIT_FILE": str(audit_file)}
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
                                "-k", "pyjpip.transport.asgi.Worker", "pyjpip.transport.asgi:application"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for_port(port, process)
        server = Server(("127.0.0.1", port), None)
        response, body = server.request("/dicomweb/studies")
        assert response.status == 401 and b"no token" in body
        response, body = server.request("/dicomweb/studies", idp.mint(expires_in=-300))
        assert response.status == 401 and b"expired at" in body, body
        response, body = server.request("/dicomweb/studies", idp.mint(claims=studies_claim(datasets[MR])))
        assert response.status == 200
        assert [s["0020000D"]["Value"][0] for s in json.loads(body)] == [datasets[MR].StudyInstanceUID]
        messages = [audit.parse(line) for line in audit_file.read_text().splitlines()]
        assert {m["event_id"] for m in messages} >= {"110114", "110112"}
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_store_scp_http_port_takes_the_same_options(tmp_path, idp):
    from network_support import store_scp

    audit_file = tmp_path / "scp-audit.log"
    with store_scp(tmp_path / "scp-store", "--auth-issuer", idp.issuer, "--auth-audience", AUDIENCE,
                   "--audit-file", audit_file, http=True) as running:
        server = Server(("127.0.0.1", running.http_port), None)
        assert server.request("/dicomweb/studies")[0].status == 401
        response, body = server.request("/dicomweb/studies", idp.mint(subject="judy"))
        assert response.status == 200 and json.loads(body) == []
        messages = [audit.parse(line) for line in audit_file.read_text().splitlines()]
        logins = [m for m in messages if m["event_id"] == "110114"]
        assert [m["outcome"] for m in logins] == [audit.MINOR_FAILURE, audit.SUCCESS], "the DICOM side's trail"
        assert any(p["UserID"] == "judy" for p in logins[1]["participants"])


def test_a_refused_post_does_not_leave_its_body_on_the_connection(server, idp):
    """A JPIP POST refused before its body is read closes the connection (else the body would be read
    as the next request)."""
    body = b"target=bare.j2k&fsiz=64,64"
    response, _ = server.request("/jpip", method="POST", body=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 401 and response.getheader("Connection") == "close"
    response, data = server.request("/jpip", idp.mint(), method="POST", body=body,
                                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 200, data


@pytest.mark.parametrize("workers", [0, 1])
def test_serve_records_its_start_and_stop_with_the_launching_account(store, tmp_path, workers):
    """PS3.15 A.5.3.1 Application Activity: the dev server and the production arbiter, stopped by SIGTERM."""
    import getpass
    import os
    import signal

    from network_support import wait_for_port

    audit_file, port = tmp_path / "audit.log", free_port()
    command = [sys.executable, "-m", "pyjpip", "serve", str(store[0]), "--port", str(port),
               "--audit-file", str(audit_file)] + (["--workers", str(workers)] if workers else [])
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for_port(port, process)
        deadline = time.monotonic() + 10
        while not (audit_file.exists() and audit_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        started = [audit.parse(line) for line in audit_file.read_text().splitlines()]
        assert [(m["event_id"], m["event_type"]) for m in started] == [("110100", "110120")]
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(30) == 0, process.stderr.read().decode()[-2000:]
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    messages = [audit.parse(line) for line in audit_file.read_text().splitlines()]
    assert [(m["event_id"], m["event_type"]) for m in messages] == [("110100", "110120"), ("110100", "110121")]
    for message in messages:
        assert [(p["UserID"], p["UserIsRequestor"], p["role"]) for p in message["participants"]] == \
            [("pyjpip", "false", "110150"), (getpass.getuser(), "true", "110151")]
        assert f"127.0.0.1:{port}" in message["detail"]
