import threading

import requests

from tests.live_server import LiveServer

WRITERS = 16


def test_concurrent_patches_adding_config_keys_all_survive(app, create, staff):
    created = create(config={"web_url": "https://a.example/"})
    barrier = threading.Barrier(WRITERS)
    statuses = []

    def add_key(n, base_url):
        with requests.Session() as session:
            barrier.wait()
            response = session.patch(
                f"{base_url}/api/v1/applications/{created['id']}/",
                json={"config": {f"key{n}": n}},
                headers=staff,
                timeout=30,
            )
            statuses.append(response.status_code)

    with LiveServer(app) as server:
        threads = [
            threading.Thread(target=add_key, args=(n, server.url)) for n in range(WRITERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        final = requests.get(
            f"{server.url}/api/v1/applications/{created['id']}/", headers=staff, timeout=30
        ).json()

    assert statuses == [200] * WRITERS
    assert final["config"] == {
        "web_url": "https://a.example/",
        "visible_type": "empty",
        **{f"key{n}": n for n in range(WRITERS)},
    }
