"""pyjpip.network.senders: the --sender and senders-file forms, and who is admitted from where."""

import json

import pytest

from pyjpip.network.senders import (
    CREATE,
    UPDATE,
    SenderConfigurationError,
    SenderPolicy,
    load_senders,
    parse_sender,
)


def test_the_command_line_form():
    assert parse_sender("CT1") == parse_sender("CT1:create")
    ct = parse_sender("CT1@10.1.2.0/24,[2001:db8::/64]:update")
    assert (ct.ae_title, [str(n) for n in ct.networks], ct.permission) == \
        ("CT1", ["10.1.2.0/24", "2001:db8::/64"], UPDATE)
    assert parse_sender("  PACS MIGRATE ").ae_title == "PACS MIGRATE"


@pytest.mark.parametrize("text, said", [
    ("CT1:delete", "the permission after ':' is one of create, update"),
    ("CT1@10.0.0.0/8:bogus", "the permission after ':' is one of create, update"),
    ("CT1@2001:db8::1", "IPv6 address goes in brackets"),
    ("CT1@host.example", "'host.example' is not an IP address or CIDR network"),
    ("", "is not an AE title"),
    ("A" * 17, "is not an AE title"),
    ("BACK\\SLASH", "is not an AE title"),
])
def test_bad_values_say_what_is_wrong(text, said):
    with pytest.raises(SenderConfigurationError, match=None) as raised:
        parse_sender(text)
    assert said in str(raised.value) and "--sender" in str(raised.value)


def test_admission_by_title_and_address():
    policy = SenderPolicy([parse_sender("CT1@10.1.2.0/24"), parse_sender("FIX:update")])
    assert policy.admit("CT1", "10.1.2.7").allowed and not policy.admit("CT1", "10.1.2.7").may_update_others
    assert policy.admit("CT1", "::ffff:10.1.2.7").allowed  # an IPv4-mapped peer is its IPv4 address
    assert not policy.admit("CT1", "10.1.3.7").allowed
    assert not policy.admit("CT2", "10.1.2.7").allowed
    assert policy.admit("FIX", "192.0.2.1").may_update_others
    assert policy.titles_from("10.1.2.7") == ["CT1", "FIX"] and policy.titles_from("192.0.2.1") == ["FIX"]
    open_policy = SenderPolicy()
    assert open_policy.admit("ANYONE", "192.0.2.1").allowed
    assert not open_policy.admit("ANYONE", "192.0.2.1").may_update_others


def test_the_senders_file(tmp_path):
    path = tmp_path / "senders.json"
    path.write_text(json.dumps({"senders": [{"ae_title": "CT1", "addresses": ["10.1.2.3"]},
                                            {"ae_title": "FIX", "permission": "update"}]}))
    senders = load_senders(str(path))
    assert [(s.ae_title, s.permission) for s in senders] == [("CT1", CREATE), ("FIX", UPDATE)]
    for document, said in (([], 'needs {"senders": [...]}'), ({"senders": [{"ae_title": 3}]}, "sender 1: needs"),
                           ({"senders": [{"ae_title": "X", "permission": "all"}]}, "\"permission\" is one of"),
                           ({"senders": [{"ae_title": "X", "addresses": "10.0.0.1"}]}, "is a list")):
        path.write_text(json.dumps(document))
        with pytest.raises(SenderConfigurationError) as raised:
            load_senders(str(path))
        assert said in str(raised.value)
    path.write_text("{")
    with pytest.raises(SenderConfigurationError, match="not JSON"):
        load_senders(str(path))
