"""The code's shape, kept: no import cycles between the service's modules, and no
endpoint reachable without a token unless authentication lists it as public."""

import ast
from pathlib import Path

import pytest

from applications_api.auth.authentication import PUBLIC_ENDPOINTS

PACKAGE = Path(__file__).resolve().parent.parent / "applications_api"


def _module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, name, modules):
    """The package's modules that `path` (module `name`) imports at any depth of its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            candidates = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {candidate for candidate in candidates if candidate in modules}
    return found - {name}


def test_no_import_cycles():
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: _imports(path, name, paths) for name, path in paths.items()}
    # a package's __init__ builds the app from everything: it is nobody's dependency
    graph = {name: deps - {"applications_api"} for name, deps in graph.items()}

    def cycle_from(start):
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    return trail
                if dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*trail, dep]))
        return None

    cycles = [cycle for name in graph if (cycle := cycle_from(name))]
    assert cycles == []


def test_every_endpoint_needs_a_token_unless_listed_public(app, client):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert PUBLIC_ENDPOINTS <= endpoints  # (a renamed public endpoint would be denied)
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = rule.rule.replace("<id:app_id>", "1").replace("<path:path>", "x")
        method = sorted(rule.methods - {"OPTIONS", "HEAD"})[0]
        response = client.open(url, method=method)
        assert response.status_code == 401, (url, method)


@pytest.mark.parametrize(
    "url",
    ["/api/v1/healthcheck/", "/api/v1/openapi.json", "/api/v1/docs/", "/favicon.ico", "/metrics"],
)
def test_public_endpoints_answer_without_a_token(client, url):
    assert client.get(url).status_code == 200


def test_a_new_blueprint_is_protected_without_asking(make_app, database_url):
    from flask import Blueprint

    app = make_app(database_url)
    extra = Blueprint("extra", __name__)
    extra.add_url_rule("/extra", "hello", lambda: "hello")
    app.register_blueprint(extra)
    assert app.test_client().get("/extra").status_code == 401
