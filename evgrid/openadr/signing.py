"""The VEN's signed OpenADR messages, with its private key loaded once.

openleadr 0.5.36's `create_message` loads the PEM key twice for every message it signs (once
to pick the signature algorithm, once inside signxml), and loading an RSA key checks it: about
40 ms each time, 80 ms a message on an idle machine. A VEN signs a poll every second, and an
event's request, its opt response and its reports on top; on a busy machine that made the
event's way to Kafka miss one poll interval + 1 s. This is `create_message` with the key
object and its signature method made once: the same templates, replay protection and signer
settings, so the XML and its signature are what openleadr writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lxml import etree
from openleadr import messaging, utils
from openleadr.preflight import preflight_message
from signxml import XMLSigner, methods
from signxml.algorithms import SignatureMethod

#: openleadr's own namespace and canonicalisation for the signed object.
_OADR_NS = "http://openadr.org/oadr-2.0b/2012/07"
_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"


def signed_messages(cert: bytes, key: bytes, passphrase: str | None) -> Callable[..., str]:
    """`create_message(message_type, **payload)` signing with `cert` and `key` (PEM or DER,
    as openleadr reads them), the key loaded here once."""
    private_key = messaging.load_private_key(key, passphrase)
    method = SignatureMethod.from_fragment(
        messaging.get_signature_algorithm_from_private_key(key, passphrase))

    def create(message_type: str, **payload: Any) -> str:
        payload = preflight_message(message_type, payload)
        template = messaging.TEMPLATES.get_template(f"{message_type}.xml")
        signed_object = utils.flatten_xml(template.render(**payload))
        signer = XMLSigner(method=methods.detached, c14n_algorithm=_C14N)
        signer.namespaces["oadr"] = _OADR_NS
        signer.sign_alg = method
        signature_tree = signer.sign(etree.fromstring(signed_object), key=private_key, cert=cert,
                                     reference_uri="#oadrSignedObject",
                                     signature_properties=messaging._create_replay_protect())
        envelope = messaging.TEMPLATES.get_template("oadrPayload.xml")
        return envelope.render(template=message_type,
                               signature=etree.tostring(signature_tree).decode("utf-8"),
                               signed_object=signed_object)

    return create
