"""Signing keys with a lifecycle (app_proxy/keys.py), through the proxy on both
transfers and checked by docs/app-proxy.md's verifiers in Python and in Node: a
rotation before, during and after its grace period, `--now`, per-application and
deployment algorithms, the deployment secret replaced with an overlap, and the JWKS."""

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from applications_api.app_proxy import keys, signing
from applications_api.database import db
from tests.support.app import SIGNING_KEY
from tests.support.backend_verifier import Trusted, hmac_trusted, send_raw

GRACE = timedelta(hours=keys.DEFAULT_GRACE_HOURS)
AHEAD = keys.PUBLISH_AHEAD + timedelta(seconds=1)


def time_passes(app, delta):
    """As if `delta` passed: every key version's times move back by it."""
    table = keys.TABLE
    with app.app_context(), db.engine.begin() as connection:
        for row in connection.execute(select(table)).mappings().all():
            moved = {
                column: row[column] - delta
                for column in ("created_date", "signs_from", "retires_at")
                if row[column] is not None
            }
            connection.execute(update(table).where(table.c.id == row["id"]).values(**moved))


def command(runner, *args):
    result = runner.invoke(args=["app-proxy-key", *map(str, args)])
    return result.exit_code, result.output


def rotate(runner, app_id, *options):
    code, output = command(runner, "rotate", app_id, *options)
    assert code == 0, output
    return output


def states(runner, app_id):
    """{keyid: state} as `app-proxy-key APP_ID` lists them."""
    code, output = command(runner, app_id)
    assert code == 0, output
    return {line.split()[0]: line.split()[2] for line in output.splitlines()}


def jwks(proxy, app_id):
    response = proxy.client.get(f"/api/v1/app_proxy_keys/{app_id}/")
    assert response.status_code == 200, response.data
    return response.json


def forwarded(proxy, reader, upstream, app_id, body=b'{"qty": 1}'):
    """A POST through the proxy, as the backend received it."""
    assert send_raw(proxy.url, "POST", f"/api/v1/app_proxy/{app_id}/orders", reader, body) == 200
    return upstream.last


def keyids(received):
    return [part.split("=", 1)[0] for part in received.headers["Signature-Input"].split(", ")]


def accepted(verifiers, received, trusted):
    """Each verifier's verdict, all alike (else the test fails here)."""
    verdicts = {
        verifier.name: verifier.user(received, trusted, body=received.body)
        for verifier in verifiers
    }
    assert len(set(verdicts.values())) == 1, verdicts
    return next(iter(verdicts.values())) is not None


@pytest.mark.parametrize("algorithm", signing.ALGORITHMS)
def test_a_rotation_before_during_and_after_its_grace_period(
    proxy_with, create, reader, upstream, runner, app, verifiers, algorithm
):
    proxy = proxy_with(APP_PROXY_SIGNING_ALGORITHM=algorithm)
    app_id = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})["id"]
    first, second = f"application-{app_id}", f"application-{app_id}.v2"
    kids = {1: first, 2: second}

    def knows(version):
        if algorithm == signing.HMAC_SHA256:
            return hmac_trusted(app_id, version)
        return Trusted(
            jwks={"keys": [k for k in jwks(proxy, app_id)["keys"] if k["kid"] == kids[version]]}
        )

    received = forwarded(proxy, reader, upstream, app_id)  # (records the first key)
    assert keyids(received) == [first]
    old = knows(1)
    assert accepted(verifiers, received, old)

    rotate(runner, app_id)  # published now, signing in 5 minutes
    assert states(runner, app_id) == {first: "signing", second: "next"}
    if algorithm == signing.ED25519:
        assert [k["kid"] for k in jwks(proxy, app_id)["keys"]] == [first, second]
    new = knows(2)
    received = forwarded(proxy, reader, upstream, app_id)
    assert keyids(received) == [first]
    assert accepted(verifiers, received, old) and not accepted(verifiers, received, new)

    time_passes(app, AHEAD)  # the grace period: both sign, either key alone verifies
    received = forwarded(proxy, reader, upstream, app_id)
    assert keyids(received) == [first, second]
    assert accepted(verifiers, received, old) and accepted(verifiers, received, new)
    assert states(runner, app_id) == {first: "signing", second: "signing"}

    time_passes(app, GRACE)  # after it: the new key alone
    received = forwarded(proxy, reader, upstream, app_id)
    assert keyids(received) == [second]
    assert accepted(verifiers, received, new) and not accepted(verifiers, received, old)
    assert states(runner, app_id) == {first: "retired", second: "signing"}
    if algorithm == signing.ED25519:
        assert [k["kid"] for k in jwks(proxy, app_id)["keys"]] == [second]


def test_now_retires_the_old_key_at_the_next_request(
    proxy, reader, proxied, upstream, runner, verifiers
):
    app_id = proxied["id"]
    assert accepted(verifiers, forwarded(proxy, reader, upstream, app_id), hmac_trusted(app_id))
    rotate(runner, app_id, "--now")
    received = forwarded(proxy, reader, upstream, app_id)
    assert keyids(received) == [f"application-{app_id}.v2"]
    assert not accepted(verifiers, received, hmac_trusted(app_id))
    assert accepted(verifiers, received, hmac_trusted(app_id, 2))


def test_a_rotation_under_way_is_refused_unless_now(proxied, runner):
    app_id = proxied["id"]
    rotate(runner, app_id, "--grace", "1")
    code, output = command(runner, "rotate", app_id)
    assert code != 0 and "rotating already" in output
    rotate(runner, app_id, "--now")  # (a leaked key: whatever is under way)
    assert states(runner, app_id) == {
        f"application-{app_id}": "retired",
        f"application-{app_id}.v2": "retired",
        f"application-{app_id}.v3": "signing",
    }


@pytest.mark.parametrize(
    "args, message",
    [
        (["rotate", "--grace", "0", "1"], "--grace"),
        (["rotate", "--grace", str(keys.MAX_GRACE_HOURS + 1), "1"], "--grace"),
        (["rotate", "--algorithm", "rsa-v1_5-sha256", "1"], "--algorithm"),
        (["rotate"], "APP_ID or --all"),
        (["rotate", "--all", "1"], "APP_ID or --all"),
        (["rotate", "999"], "application 999 does not exist"),
        (["999"], "application 999 does not exist"),
        (["0"], "APP_ID"),
    ],
)
def test_the_commands_refuse_what_they_cannot_do(runner, app, args, message):
    code, output = command(runner, *args)
    assert code != 0
    assert message in output


def test_rotating_one_application_leaves_every_others_signatures_byte_identical(
    app, create, runner
):
    apps = [create(is_proxy_available=True)["id"] for _ in range(3)]
    url = "https://ext.example.com/api/orders?tag=1"

    def signed_by_each():
        with app.app_context():
            return {
                app_id: signing.identity_headers(
                    keys.signing_keys(app_id), "POST", url, 7, b"{}", 1764158400, "n0nce"
                )
                for app_id in apps
            }

    before = signed_by_each()
    rotate(runner, apps[0], "--now", "--algorithm", "ed25519")
    after = signed_by_each()
    assert after[apps[0]] != before[apps[0]]
    assert {k: v for k, v in after.items() if k != apps[0]} == {
        k: v for k, v in before.items() if k != apps[0]
    }


def test_all_rotates_every_application_and_lists_what_it_made(runner, create):
    apps = [create()["id"] for _ in range(2)]
    rotate(runner, apps[0])
    code, output = command(runner, "rotate", "--all", "--now")
    assert code == 0, output
    for app_id in apps:
        assert f"application-{app_id}.v" in output
    assert states(runner, apps[1]) == {
        f"application-{apps[1]}": "retired",
        f"application-{apps[1]}.v2": "signing",
    }


def test_the_listing_prints_what_a_backend_verifies_with(runner, proxied):
    app_id = proxied["id"]
    rotate(runner, app_id, "--algorithm", "ed25519")
    code, output = command(runner, app_id)
    first, second = output.splitlines()
    assert (
        first.split()[-1]
        == signing.derive(SIGNING_KEY, f"application-{app_id}", "hmac-sha256").hex()
    )
    key = signing.signing_key(SIGNING_KEY, f"application-{app_id}.v2", signing.ED25519)
    assert second.split()[-1] == keys.jwk(key)["x"]  # (published in the JWKS)


def test_the_deployment_algorithm_is_a_first_keys_and_never_changes_a_recorded_one(
    proxy_with, reader, proxied, upstream, verifiers, create
):
    app_id = proxied["id"]
    hmac_proxy = proxy_with()
    assert accepted(
        verifiers, forwarded(hmac_proxy, reader, upstream, app_id), hmac_trusted(app_id)
    )
    ed25519 = proxy_with(APP_PROXY_SIGNING_ALGORITHM="ed25519")
    assert accepted(verifiers, forwarded(ed25519, reader, upstream, app_id), hmac_trusted(app_id))
    assert jwks(ed25519, app_id) == {"keys": []}
    newer = create(is_proxy_available=True, config={"web_url": f"{upstream.url}/base/"})["id"]
    published = Trusted(jwks=jwks(ed25519, newer))
    assert [k["kid"] for k in published.jwks["keys"]] == [f"application-{newer}"]
    assert accepted(verifiers, forwarded(ed25519, reader, upstream, newer), published)
    assert accepted(verifiers, forwarded(hmac_proxy, reader, upstream, newer), published)


def test_the_deployment_secret_is_replaced_with_an_overlap(
    proxy_with, reader, proxied, upstream, app, verifiers
):
    app_id = proxied["id"]
    old = hmac_trusted(app_id)
    assert accepted(verifiers, forwarded(proxy_with(), reader, upstream, app_id), old)
    # 1. the new secret, the old one kept as the previous: every key signs as before
    replacing = proxy_with(
        APP_PROXY_SIGNING_KEY="the-new-secret", APP_PROXY_PREVIOUS_SIGNING_KEY=SIGNING_KEY
    )
    received = forwarded(replacing, reader, upstream, app_id)
    assert keyids(received) == [f"application-{app_id}"] and accepted(verifiers, received, old)
    # 2. every application rotated onto it, with the grace period
    rotate(replacing.app.test_cli_runner(), "--all")
    time_passes(app, AHEAD)
    new = hmac_trusted(app_id, 2, secret="the-new-secret")
    received = forwarded(replacing, reader, upstream, app_id)
    assert accepted(verifiers, received, old) and accepted(verifiers, received, new)
    # 3. after it, the previous secret goes
    time_passes(app, GRACE)
    replaced = proxy_with(APP_PROXY_SIGNING_KEY="the-new-secret")
    received = forwarded(replaced, reader, upstream, app_id)
    assert accepted(verifiers, received, new) and not accepted(verifiers, received, old)


def test_a_key_whose_secret_is_gone_does_not_sign_and_without_any_the_answer_is_502(
    proxy_with, reader, proxied, upstream, verifiers
):
    app_id = proxied["id"]
    forwarded(proxy_with(), reader, upstream, app_id)  # (recorded under the tests' secret)
    unknown = proxy_with(APP_PROXY_SIGNING_KEY="another-secret")
    before = len(upstream.received)
    assert send_raw(unknown.url, "GET", f"/api/v1/app_proxy/{app_id}/x", reader) == 502
    assert len(upstream.received) == before  # never sent unsigned


def test_the_jwks_is_public_cacheable_and_conditional(proxy, proxied, runner):
    app_id = proxied["id"]
    rotate(runner, app_id, "--algorithm", "ed25519")
    response = proxy.client.get(f"/api/v1/app_proxy_keys/{app_id}/")  # no token
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/jwk-set+json"
    assert "max-age=300" in response.headers["Cache-Control"]
    (published,) = response.json["keys"]
    assert published == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": published["x"],
        "kid": f"application-{app_id}.v2",
        "alg": "EdDSA",
        "use": "sig",
    }
    etag = response.headers["ETag"]
    again = proxy.client.get(f"/api/v1/app_proxy_keys/{app_id}/", headers={"If-None-Match": etag})
    assert again.status_code == 304
    rotate(runner, app_id, "--now")
    changed = proxy.client.get(f"/api/v1/app_proxy_keys/{app_id}/", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert [k["kid"] for k in changed.json["keys"]] == [f"application-{app_id}.v3"]
    missing = proxy.client.get("/api/v1/app_proxy_keys/999999/")
    assert missing.status_code == 404 and missing.json["code"] == 404


def test_the_guides_fetch_the_jwks(proxy, proxied, runner, verifiers):
    app_id = proxied["id"]
    rotate(runner, app_id, "--algorithm", "ed25519")
    url = f"{proxy.url}/api/v1/app_proxy_keys/{app_id}/"
    for verifier in verifiers:
        assert verifier.fetch_kids(url) == [f"application-{app_id}.v2"]  # (not the HMAC key)
