"""The verification snippet extension authors copy from the README really verifies."""

import re
from pathlib import Path

from applications_api.app_proxy import signing

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(block for block in blocks if "def verify(" in block)
    namespace = {}
    exec(snippet, namespace)
    return namespace["verify"]


def test_the_readme_snippet_accepts_a_genuine_signature_and_refuses_a_changed_one():
    verify = readme_verify()
    headers = signing.identity_headers("secret", "POST", "/api/orders", "a=1", 42)
    assert verify("secret", "POST", "/api/orders", "a=1", headers)
    assert not verify("secret", "POST", "/api/orders", "a=2", headers)
    assert not verify("other", "POST", "/api/orders", "a=1", headers)
