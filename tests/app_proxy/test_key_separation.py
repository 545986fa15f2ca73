"""An Ed25519 key is never the HMAC secret of the same key id: a backend that was given an
application's HMAC secret (or a leaked one) must not hold the private key that signs for
it under Ed25519, nor the other way round. Keys of different ids differ too."""

import pytest

from applications_api.app_proxy.signing import ED25519, HMAC_SHA256, derive, signing_key

SECRET = "a deployment secret"


@pytest.mark.parametrize("key_id", ["application-1", "application-1.v2", "application-7"])
def test_the_two_algorithms_derive_different_material_for_one_key_id(key_id):
    assert derive(SECRET, key_id, HMAC_SHA256) != derive(SECRET, key_id, ED25519)


def test_every_key_id_and_secret_has_its_own_material():
    materials = {
        derive(secret, key_id, algorithm)
        for secret in (SECRET, SECRET + "!")
        for key_id in ("application-1", "application-2", "application-1.v2")
        for algorithm in (HMAC_SHA256, ED25519)
    }
    assert len(materials) == 12
    assert all(len(material) == 32 for material in materials)


def test_an_ed25519_key_s_private_half_is_not_the_hmac_secret():
    hmac_key = signing_key(SECRET, "application-1", HMAC_SHA256)
    ed_key = signing_key(SECRET, "application-1", ED25519)
    assert ed_key.private is not None and hmac_key.private is None
    assert ed_key.material != hmac_key.material
