"""Signed content credentials: a C2PA manifest (https://c2pa.org, through c2pa-python) in the PNG/JPEG files we write.

Signing is on when a certificate chain and its private key are configured, by environment variables
(AIGCKIT_C2PA_CERT and AIGCKIT_C2PA_KEY: paths of PEM files; AIGCKIT_C2PA_TSA_URL: an optional RFC 3161 time-stamp
server) or by `c2pa.json` in the user's config folder ({"cert": PATH, "key": PATH, "tsa_url": URL or null}). The
chain is the signing certificate first, then its issuers; c2pa accepts an end-entity certificate (not a CA) with the
digitalSignature key usage and an extended key usage such as emailProtection, signed by a CA, with ES256/384/512,
PS256/384/512 or Ed25519 keys (the algorithm is read from the key). A manifest names the tool, model, checkpoint
sha256, seed and sampler settings; an inpainted image records its input as the parent ingredient of a
c2pa.opened action followed by c2pa.edited. Any change to the pixels afterwards makes validation fail.

Reading validates the manifest; AIGCKIT_C2PA_TRUST_ANCHORS (a PEM file of root certificates) makes it also check the
signer against them (state "Trusted"); without it a valid manifest by an unknown signer is "Valid", not "Trusted".
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AigcError
from .keys import config_dir

__all__ = ["CERT_ENV", "KEY_ENV", "TSA_ENV", "TRUST_ENV", "SigningCredentials", "ManifestReport",
           "signing_credentials", "sign", "read_manifest", "mime_type"]

CERT_ENV, KEY_ENV, TSA_ENV = "AIGCKIT_C2PA_CERT", "AIGCKIT_C2PA_KEY", "AIGCKIT_C2PA_TSA_URL"
TRUST_ENV = "AIGCKIT_C2PA_TRUST_ANCHORS"
GENERATION_LABEL = "org.aigckit.generation"  # our own assertion: every generation setting, typed
AI_MADE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
AI_EDITED = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
EXPECTED_WITHOUT_TRUST = {"signingCredential.untrusted"}  # what every self-made or private chain reports


@dataclass(frozen=True)
class SigningCredentials:
    """A PEM certificate chain (signer first), its PEM private key, and an optional time-stamp server."""

    cert_chain: bytes = field(repr=False)
    private_key: bytes = field(repr=False)
    tsa_url: str | None = None

    @property
    def algorithm(self) -> str:
        """The c2pa signing algorithm of the key: es256/es384/es512 by curve, ps256 for RSA, ed25519."""
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        try:
            key = load_pem_private_key(self.private_key, password=None)
        except (ValueError, TypeError) as error:
            raise AigcError(f"the C2PA signing key is not an unencrypted PEM private key ({error}); give "
                            f"${KEY_ENV} a PEM file without a passphrase") from None
        if isinstance(key, ec.EllipticCurvePrivateKey):
            curves = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
            if key.curve.name not in curves:
                raise AigcError(f"C2PA signs with P-256, P-384 or P-521 keys, not {key.curve.name}; make a key "
                                f"on one of those curves")
            return curves[key.curve.name]
        if isinstance(key, rsa.RSAPrivateKey):
            return "ps256"
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return "ed25519"
        raise AigcError(f"C2PA signs with EC, RSA or Ed25519 keys, not {type(key).__name__}")


@dataclass(frozen=True)
class ManifestReport:
    """A file's active C2PA manifest and its validation: state Valid / Trusted / Invalid, failure codes."""

    state: str
    failures: list[str]
    manifest: dict[str, Any]

    @property
    def valid(self) -> bool:
        """Whether the manifest validated (its signature, and the hashes binding it to the file's content)."""
        return self.state in ("Valid", "Trusted")

    @property
    def generation(self) -> dict[str, Any] | None:
        """The aigckit generation settings the manifest records, if any."""
        for assertion in self.manifest.get("assertions", []):
            if assertion.get("label") == GENERATION_LABEL:
                return assertion.get("data")
        return None

    def describe(self) -> dict[str, Any]:
        """What `aigckit info` shows: validation, signer, the actions, the ingredients and our settings."""
        actions = [a for assertion in self.manifest.get("assertions", [])
                   if assertion.get("label", "").startswith("c2pa.actions")
                   for a in assertion.get("data", {}).get("actions", [])]
        return {"state": self.state, "valid": self.valid, "failures": self.failures,
                "signer": self.manifest.get("signature_info", {}),
                "claim_generator": self.manifest.get("claim_generator_info", []),
                "actions": [a.get("action") for a in actions],
                "ingredients": [{"title": i.get("title"), "relationship": i.get("relationship")}
                                for i in self.manifest.get("ingredients", [])],
                "generation": self.generation}


def _read_pem(path: str, what: str, source: str) -> bytes:
    file = Path(path).expanduser()
    if not file.is_file():
        raise AigcError(f"the C2PA {what} {file} (from {source}) is not a file; give the path of a PEM file")
    return file.read_bytes()


def signing_credentials(environ: Mapping[str, str] | None = None) -> SigningCredentials | None:
    """The configured signing credentials (environment first, then the config file), or None: sign nothing."""
    environ = os.environ if environ is None else environ
    cert, key = environ.get(CERT_ENV), environ.get(KEY_ENV)
    if cert or key:
        if not (cert and key):
            missing = KEY_ENV if cert else CERT_ENV
            raise AigcError(f"C2PA signing needs both ${CERT_ENV} and ${KEY_ENV}; set ${missing} as well, or "
                            f"unset the other")
        return SigningCredentials(_read_pem(cert, "certificate chain", f"${CERT_ENV}"),
                                  _read_pem(key, "private key", f"${KEY_ENV}"), environ.get(TSA_ENV) or None)
    path = config_dir(environ) / "c2pa.json"
    if not path.is_file():
        return None
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AigcError(f"{path} is not readable JSON ({error.__class__.__name__}); fix it or remove it") from None
    if not (isinstance(settings, dict) and isinstance(settings.get("cert"), str) and isinstance(settings.get("key"), str)
            and set(settings) <= {"cert", "key", "tsa_url"}):
        raise AigcError(f"{path} must be a JSON object with \"cert\" and \"key\" (PEM file paths) and optionally "
                        f"\"tsa_url\", nothing else")
    return SigningCredentials(_read_pem(settings["cert"], "certificate chain", str(path)),
                              _read_pem(settings["key"], "private key", str(path)), settings.get("tsa_url"))


def mime_type(data: bytes) -> str:
    """image/png or image/jpeg, from the file's first bytes; AigcError for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    raise AigcError("content credentials are written into PNG and JPEG files only; this is neither")


def _context(**settings: Any) -> Any:
    import c2pa

    return c2pa.Context(settings=c2pa.Settings.from_dict(settings))


def sign(data: bytes, credentials: SigningCredentials, generation: Mapping[str, Any], *, title: str,
         edited_from: bytes | None = None) -> bytes:
    """`data` (a PNG or JPEG file's bytes) with a signed C2PA manifest that records `generation` (model, checkpoint
    sha256, seed, sampler, ...): made by aigckit, or, with `edited_from` (the input file's bytes), edited from it."""
    import c2pa

    from .. import __version__

    params = {k: v for k, v in generation.items() if v is not None}
    if edited_from is None:
        actions = [{"action": "c2pa.created", "digitalSourceType": AI_MADE, "softwareAgent": {"name": "aigckit",
                    "version": __version__}, "parameters": params}]
    else:  # c2pa 2.x: a manifest's first action is created or opened; the edit follows the opening of its input
        actions = [{"action": "c2pa.opened", "parameters": {"ingredientIds": ["input"]}},
                   {"action": "c2pa.edited", "digitalSourceType": AI_EDITED,
                    "softwareAgent": {"name": "aigckit", "version": __version__}, "parameters": params}]
    manifest = {"claim_generator_info": [{"name": "aigckit", "version": __version__}], "title": title,
                "assertions": [{"label": "c2pa.actions", "data": {"actions": actions}},
                               {"label": GENERATION_LABEL, "data": dict(generation)}]}
    info = c2pa.C2paSignerInfo(alg=getattr(c2pa.C2paSigningAlg, credentials.algorithm.upper()),
                               sign_cert=credentials.cert_chain, private_key=credentials.private_key,
                               ta_url=credentials.tsa_url.encode() if credentials.tsa_url else None)
    mime = mime_type(data)
    try:
        with _context(builder={"thumbnail": {"enabled": False}}) as context, \
                c2pa.Signer.from_info(info) as signer, c2pa.Builder(json.dumps(manifest), context) as builder:
            if edited_from is not None:
                builder.add_ingredient(json.dumps({"title": "input", "relationship": "parentOf", "label": "input"}),
                                       mime_type(edited_from), io.BytesIO(edited_from))
            out = io.BytesIO()
            builder.sign(signer, mime, io.BytesIO(data), out)
    except c2pa.C2paError as error:
        raise AigcError(f"C2PA signing failed ({str(error).splitlines()[0]}); check the certificate chain and key "
                        f"(${CERT_ENV}, ${KEY_ENV}): an end-entity certificate with digitalSignature usage, signed "
                        f"by a CA, first in the chain") from None
    return out.getvalue()


def read_manifest(data: bytes, environ: Mapping[str, str] | None = None) -> ManifestReport | None:
    """The validated active C2PA manifest of a PNG or JPEG file's bytes; None when it carries none."""
    import c2pa

    environ = os.environ if environ is None else environ
    mime = mime_type(data)
    settings: dict[str, Any] = {}
    if environ.get(TRUST_ENV):
        settings["trust"] = {"trust_anchors": _read_pem(environ[TRUST_ENV], "trust anchors", f"${TRUST_ENV}")
                             .decode("ascii")}
    try:
        with _context(**settings) as context:
            reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
            if reader is None:
                return None
            with reader:
                manifest = reader.get_active_manifest() or {}
                state = reader.get_validation_state() or "Invalid"
                results = reader.get_validation_results() or {}
    except c2pa.C2paError as error:  # a manifest store too damaged to read at all
        return ManifestReport("Invalid", [str(error).splitlines()[0]], {})
    failures = [item.get("code", "?") for item in (results.get("activeManifest") or {}).get("failure", [])]
    return ManifestReport(state, failures, manifest)
