"""``portlabel registry update`` against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
import lzma
import threading

import pytest

from portlabel.cli import main
from portlabel.registry import loading
from portlabel.registry.bundled import BUNDLED_SERVICES_XML
from portlabel.registry.update import UpdateError, update_registry

XML = lzma.decompress(BUNDLED_SERVICES_XML.read_bytes())


@pytest.fixture
def server():
    """Serve ``routes[path] = (body, headers)`` on an ephemeral loopback port."""
    routes: dict[str, tuple[bytes, dict]] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body, headers = routes.get(self.path, (None, {}))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            for k, v in {"Content-Length": str(len(body)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    loading.forget_default()
    yield tmp_path / "cache" / "portlabel" / "iana-registry.plreg"
    loading.forget_default()


def test_update_from_http_replaces_the_cached_registry(server, cache):
    base, routes = server
    edited = XML.replace(b"<updated>2026-08-17</updated>", b"<updated>2026-12-01</updated>", 1)
    routes["/ports.xml"] = (edited, {})
    result = update_registry(f"{base}/ports.xml", timeout=10)
    assert result["updated"] == "2026-12-01" and cache.exists()
    assert loading.default_registry().updated == "2026-12-01"
    assert loading.default_registry().path == str(cache)


@pytest.mark.parametrize(
    "body, why",
    [
        (XML[: len(XML) // 2], "not well-formed"),
        (b"\x00\x01garbage" * 100, "registry format"),
        (b"<html><body>Service unavailable</body></html>", "registry format"),
    ],
)
def test_bad_download_keeps_the_previous_registry(server, cache, body, why):
    base, routes = server
    routes["/good.xml"] = (XML, {})
    update_registry(f"{base}/good.xml", timeout=10)
    before = cache.read_bytes()
    routes["/bad.xml"] = (body, {})
    with pytest.raises(UpdateError) as info:
        update_registry(f"{base}/bad.xml", timeout=10)
    assert why in str(info.value) and "bad.xml" in str(info.value)
    assert cache.read_bytes() == before
    assert not [p for p in cache.parent.iterdir() if p.name.startswith(".")]


def test_short_read_against_content_length_is_rejected(server, cache):
    base, routes = server
    routes["/short.xml"] = (XML[:1000], {"Content-Length": str(len(XML))})
    with pytest.raises(UpdateError):
        update_registry(f"{base}/short.xml", timeout=10)
    assert not cache.exists()


def test_unreachable_source_is_a_one_line_error_and_exit_1(cache, capsys):
    code = main(["registry", "update", "--from", "http://127.0.0.1:9/none.xml", "--timeout", "2"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "127.0.0.1:9" in err
    assert not cache.exists()


def test_update_from_a_local_file(tmp_path, cache):
    path = tmp_path / "ports.xml"
    path.write_bytes(XML)
    assert main(["registry", "update", "--from", str(path), "-q"]) == 0
    assert cache.exists()
