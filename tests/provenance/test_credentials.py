"""C2PA content credentials, signed with a test certificate chain made here (a CA and an end-entity signer)."""

import datetime
import io
import json

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image
from skimage import data as skdata

from aigckit.errors import AigcError
from aigckit.provenance.credentials import (CERT_ENV, KEY_ENV, TRUST_ENV, SigningCredentials, read_manifest, sign,
                                            signing_credentials)
from aigckit.provenance.png import png_bytes, read_metadata

GENERATION = {"model": "ddpm-digits", "checkpoint_sha256": "ab" * 32, "seed": 7, "sampler": "ddim", "steps": 20}


def _usage(**on):
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"]
    return x509.KeyUsage(**{name: on.get(name, False) for name in names})


def make_chain(folder):
    """A test CA and a signer it certifies, as c2pa accepts them; (chain.pem, key.pem, ca.pem) in `folder`."""
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(common):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aigckit tests")])

    def certificate(subject, issuer, public, signing_key, extensions):
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=7)))
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name("aigckit test CA"), name("aigckit test CA"), ca_key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=True, path_length=0), True), (_usage(key_cert_sign=True, crl_sign=True), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)])
    leaf = certificate(name("aigckit test signer"), ca.subject, key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=False, path_length=None), True), (_usage(digital_signature=True), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)])
    pem = serialization.Encoding.PEM
    (folder / "chain.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    return folder / "chain.pem", folder / "key.pem", folder / "ca.pem"


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return make_chain(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def credentials(chain):
    return signing_credentials({CERT_ENV: str(chain[0]), KEY_ENV: str(chain[1])})


def photo_png(size=64) -> bytes:
    image = Image.fromarray(skdata.astronaut()).resize((size, size))
    return png_bytes(image, GENERATION)


def test_signed_png_validates_names_the_generation_and_keeps_its_text_chunks(credentials):
    signed = sign(photo_png(), credentials, GENERATION, title="test image")
    report = read_manifest(signed, {})
    assert report.valid and report.state == "Valid"  # a private CA is not on any trust list: Valid, not Trusted
    assert report.generation == GENERATION
    info = report.describe()
    assert info["actions"] == ["c2pa.created"] and info["signer"]["common_name"] == "aigckit test signer"
    assert read_metadata(signed)["checkpoint_sha256"] == "ab" * 32  # the PNG text chunks survive signing
    with Image.open(io.BytesIO(signed)) as image:
        assert np.array_equal(np.asarray(image), np.asarray(Image.open(io.BytesIO(photo_png()))))


def test_trust_anchors_make_it_trusted(credentials, chain):
    signed = sign(photo_png(), credentials, GENERATION, title="test image")
    assert read_manifest(signed, {TRUST_ENV: str(chain[2])}).state == "Trusted"


def test_changed_pixels_fail_validation(credentials):
    signed = sign(photo_png(), credentials, GENERATION, title="test image")
    with Image.open(io.BytesIO(signed)) as image:  # the manifest is kept, one pixel changed
        pixels = np.asarray(image).copy()
    pixels[10, 10] ^= 1
    repacked = io.BytesIO()
    Image.fromarray(pixels).save(repacked, format="PNG")
    other = repacked.getvalue()
    tampered = _replace_idat(signed, other)
    assert tampered != signed
    report = read_manifest(tampered, {})
    assert report is not None and not report.valid and report.state == "Invalid"
    assert "assertion.dataHash.mismatch" in report.failures
    # a flipped byte in the image data as well
    flipped = bytearray(signed)
    flipped[signed.index(b"IDAT") + 40] ^= 0xFF
    assert not read_manifest(bytes(flipped), {}).valid


def _chunks(data):
    position, chunks = 8, []
    while position < len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        chunks.append(data[position:position + 12 + length])
        position += 12 + length
    return chunks


def _replace_idat(signed, other):
    """`signed` with its IDAT chunks replaced by those of `other` (same size and mode)."""
    new_idat = [c for c in _chunks(other) if c[4:8] == b"IDAT"]
    out, done = [signed[:8]], False
    for chunk in _chunks(signed):
        if chunk[4:8] == b"IDAT":
            if not done:
                out += new_idat
                done = True
        else:
            out.append(chunk)
    return b"".join(out)


def test_an_edit_records_its_input_as_parent_ingredient(credentials):
    source = photo_png(32)
    signed = sign(photo_png(48), credentials, {**GENERATION, "method": "repaint"}, title="repaired",
                  edited_from=source)
    info = read_manifest(signed, {}).describe()
    assert info["valid"] and info["actions"] == ["c2pa.opened", "c2pa.edited"]
    assert info["ingredients"] == [{"title": "input", "relationship": "parentOf"}]


def test_unsigned_file_has_no_manifest():
    assert read_manifest(photo_png(), {}) is None


def test_configuration_from_environment_or_config_file(tmp_path, chain):
    assert signing_credentials({"XDG_CONFIG_HOME": str(tmp_path)}) is None  # nothing configured: nothing signed
    with pytest.raises(AigcError, match="needs both"):
        signing_credentials({CERT_ENV: str(chain[0])})
    (tmp_path / "aigckit").mkdir()
    (tmp_path / "aigckit" / "c2pa.json").write_text(json.dumps({"cert": str(chain[0]), "key": str(chain[1])}))
    found = signing_credentials({"XDG_CONFIG_HOME": str(tmp_path)})
    assert found.cert_chain == chain[0].read_bytes() and found.algorithm == "es256"
    (tmp_path / "aigckit" / "c2pa.json").write_text(json.dumps({"cert": str(chain[0])}))
    with pytest.raises(AigcError, match="must be a JSON object"):
        signing_credentials({"XDG_CONFIG_HOME": str(tmp_path)})


def test_a_self_signed_certificate_is_refused_in_one_line(tmp_path, chain):
    bad = SigningCredentials(chain[2].read_bytes(), chain[1].read_bytes())  # the CA's certificate, the signer's key
    with pytest.raises(AigcError, match="C2PA signing failed"):
        sign(photo_png(), bad, GENERATION, title="x")


def test_inpaint_writes_a_signed_edit_that_info_validates_and_a_tampered_copy_fails(chain, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from aigckit.cli import app

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("AIGCKIT_WATERMARK_KEY", "credentials-test-secret-0123")
    monkeypatch.setenv(CERT_ENV, str(chain[0]))
    monkeypatch.setenv(KEY_ENV, str(chain[1]))
    Image.fromarray(skdata.camera()).resize((64, 64)).save(tmp_path / "in.png")
    hole = np.zeros((64, 64), dtype=np.uint8)
    hole[24:40, 24:40] = 255
    Image.fromarray(hole).save(tmp_path / "mask.png")
    runner = CliRunner()
    result = runner.invoke(app, ["inpaint", "--image", str(tmp_path / "in.png"), "--mask", str(tmp_path / "mask.png"),
                                 "--out", str(tmp_path / "out.png")])
    assert result.exit_code == 0 and "watermarked, signed" in result.stderr, result.output
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "out.png"), "--json"]).stdout)
    assert info["c2pa"]["valid"] and info["c2pa"]["actions"] == ["c2pa.opened", "c2pa.edited"]
    assert info["c2pa"]["generation"]["method"] == "telea" and info["c2pa"]["generation"]["watermark"] == "aigckit-image-v1"
    assert info["watermark"]["detected"] and info["metadata"]["input"] == "in.png"
    table = runner.invoke(app, ["info", str(tmp_path / "out.png")]).stdout
    assert "Valid (signingCredential.untrusted)" in table and "input (parentOf)" in table

    with Image.open(tmp_path / "out.png") as image:
        pixels = np.asarray(image).copy()
    pixels[0, 0] ^= 4
    repacked = io.BytesIO()
    Image.fromarray(pixels).save(repacked, format="PNG")
    (tmp_path / "tampered.png").write_bytes(_replace_idat((tmp_path / "out.png").read_bytes(), repacked.getvalue()))
    info = json.loads(runner.invoke(app, ["info", str(tmp_path / "tampered.png"), "--json"]).stdout)
    assert info["c2pa"]["state"] == "Invalid" and "assertion.dataHash.mismatch" in info["c2pa"]["failures"]
