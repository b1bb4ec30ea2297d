"""The VEN's signed messages: what openleadr's `create_message` writes, with the key loaded
once, and accepted by openleadr's own signature check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree
from openleadr.messaging import create_message, parse_message, validate_xml_signature

from evgrid.openadr.demo_vtn import make_cert
from evgrid.openadr.signing import signed_messages

#: What differs between two signings of one message: the replay protection's time and nonce,
#: and the digest and signature that cover them.
_PER_SIGNING = re.compile(
    r"(<dsp:timestamp>|<dsp:nonce>|<ds:DigestValue>|<ds:SignatureValue>)[^<]*")


@pytest.mark.parametrize(("message_type", "payload"), [
    ("oadrPoll", {"ven_id": "ven-1"}),
    ("oadrRequestEvent", {"ven_id": "ven-1", "request_id": "r-1"}),
    ("oadrCreatedEvent", {"ven_id": "ven-1", "response": {
        "response_code": 200, "response_description": "OK", "request_id": "r-2"},
        "event_responses": [{"response_code": 200, "response_description": "OK",
                             "request_id": "r-2", "event_id": "e1",
                             "modification_number": 0, "opt_type": "optIn"}]}),
])
def test_a_message_is_openleadrs_and_its_signature_holds(
    tmp_path: Path, message_type: str, payload: dict,
) -> None:
    pair = make_cert(tmp_path, "ven")
    cert, key = pair.cert.read_bytes(), pair.key.read_bytes()
    ours = signed_messages(cert, key, None)(message_type, **payload)
    theirs = create_message(message_type, cert=cert, key=key, **payload)
    assert _PER_SIGNING.sub(r"\1", ours) == _PER_SIGNING.sub(r"\1", theirs)
    validate_xml_signature(etree.fromstring(ours.encode()), cert_fingerprint=pair.fingerprint)
    assert parse_message(ours)[0] == message_type
