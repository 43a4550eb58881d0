"""Fetching weights for real against servers on 127.0.0.1: a good file, a wrong hash, a
truncated body, an HTML page, a stalled server, a server that is down; and the Google
Drive path up to the request gdown makes (through a local proxy that records it)."""

import hashlib
import json
import socket
import threading
import time

import pytest

from skin import fetch as fetch_module
from skin.cards import read_card
from skin.fetch import FetchError, drive_url, fetch
from tests.weights_server import url_of_a_closed_port, weights_server

WEIGHTS = b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 400  # looks like an HDF5 file
SHA256 = hashlib.sha256(WEIGHTS).hexdigest()


@pytest.fixture
def server():
    with weights_server(WEIGHTS) as server:
        yield server


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("SKIN_CACHE_DIR", str(folder))
    return folder


def card_for(tmp_path, source: dict):
    path = tmp_path / "card.json"
    path.write_text(json.dumps({"name": "tiny", "backbone": "mobilenetv2", "classes": ["a", "b"],
                                "input_size": 32, "source": {**source, "sha256": SHA256}}))
    return read_card(path)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_download_is_verified_cached_and_reused(server, cache, tmp_path):
    card = card_for(tmp_path, {"url": server.url})
    path = fetch(card)
    assert path.read_bytes() == WEIGHTS and path.parent == cache
    assert leftovers(cache) == [path.name]  # no temporary files
    server.fault = "gone"  # the server forgets the file: the cache is used
    assert fetch(card) == path


@pytest.mark.parametrize("fault, reason", [
    ("wrong", "does not match the sha256"),
    ("truncated", "download failed"),
    ("html", "HTML page instead of the weights"),
    ("gone", "download failed"),
])
def test_bad_downloads_are_deleted_and_reported(server, cache, tmp_path, fault, reason):
    card = card_for(tmp_path, {"url": server.url})
    server.fault = fault
    with pytest.raises(FetchError, match=reason) as caught:
        fetch(card)
    assert "model tiny" in str(caught.value) and server.url in str(caught.value)
    assert leftovers(cache) == []
    server.fault = None  # the source is fixed: the next attempt succeeds
    assert fetch(card).read_bytes() == WEIGHTS


def test_a_stalled_server_times_out_in_seconds(server, cache, tmp_path, monkeypatch):
    monkeypatch.setattr(fetch_module, "READ_TIMEOUT_S", 1)
    card = card_for(tmp_path, {"url": server.url})
    server.fault = "slow"
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not answer"):
        fetch(card)
    assert time.monotonic() - started < 2.9  # gave up before the server answered
    assert leftovers(cache) == []


def test_a_server_that_is_down(cache, tmp_path):
    with pytest.raises(FetchError, match="cannot connect"):
        fetch(card_for(tmp_path, {"url": url_of_a_closed_port()}))
    assert leftovers(cache) == []


def test_a_damaged_cache_entry_is_downloaded_again(server, cache, tmp_path):
    card = card_for(tmp_path, {"url": server.url})
    path = fetch(card)
    path.write_bytes(b"garbage")
    assert fetch(card).read_bytes() == WEIGHTS


def test_a_local_file_source(tmp_path):
    (tmp_path / "tiny.weights.h5").write_bytes(WEIGHTS)
    card = card_for(tmp_path, {"file": "tiny.weights.h5"})
    assert fetch(card) == tmp_path / "tiny.weights.h5"
    (tmp_path / "tiny.weights.h5").write_bytes(WEIGHTS[:100])
    with pytest.raises(FetchError, match="does not match the sha256"):
        fetch(card)
    (tmp_path / "tiny.weights.h5").unlink()
    with pytest.raises(FetchError, match="missing"):
        fetch(card)


def test_plain_http_to_another_host_is_refused(cache, tmp_path):
    with pytest.raises(FetchError, match="only https"):
        fetch(card_for(tmp_path, {"url": "http://example.com/w.h5"}))


def test_drive_ids_and_share_links():
    file_id = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    expected = f"https://drive.google.com/uc?id={file_id}"
    assert drive_url(file_id) == expected
    assert drive_url(f"https://drive.google.com/file/d/{file_id}/view?usp=sharing") == expected
    assert drive_url(f"https://drive.google.com/open?id={file_id}") == expected
    with pytest.raises(ValueError):
        drive_url("https://example.com/not-drive")


@pytest.fixture
def recording_proxy(monkeypatch):
    """An HTTP proxy on 127.0.0.1 that records the first request line and refuses it."""
    seen = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(4096).split(b"\r\n")[0].decode())
                conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    for var in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(var, proxy)
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    yield seen
    listener.close()


def test_drive_source_requests_drive_and_reports_failure(recording_proxy, cache, tmp_path):
    card = card_for(tmp_path, {"gdrive": "https://drive.google.com/file/d/"
                                         "1AbCdEfGhIjKlMnOpQrStUvWxYz012345/view"})
    with pytest.raises(FetchError, match="model tiny") as caught:
        fetch(card)
    assert recording_proxy and recording_proxy[0].startswith("CONNECT drive.google.com:443")
    assert "gdrive" in str(caught.value)
    assert leftovers(cache) == []
