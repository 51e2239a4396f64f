"""The Export & push page sends stored secrets (NEO4J_PASSWORD, EMBEDDINGS_IMPORT_TOKEN) only to the target they
belong to, and never shows the body of a failed answer. A local listener on 127.0.0.1 plays the foreign target:
it speaks just enough Bolt (the handshake) or HTTP for a client to send its credentials, and records every byte."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from console.files.embfiles import EmbeddedItem, make_meta, write_embeddings
from console.app.workspace import Workspace

APP = str(Path(__file__).resolve().parent.parent / "app.py")
STORED_PASSWORD = "stored-neo4j-password-7f3a"
STORED_TOKEN = "stored-import-token-91c2"
INTERNAL_BODY = "INTERNAL-ONLY: db=prod user=admin " * 20
# A Bolt SUCCESS message {server: "Neo4j/5.20.0", connection_id: "bolt-1"} in one chunk, the answer to HELLO.
_SUCCESS = b"\xb1\x70\xa2\x86server\x8cNeo4j/5.20.0\x8dconnection_id\x86bolt-1"
BOLT_SUCCESS = len(_SUCCESS).to_bytes(2, "big") + _SUCCESS + b"\x00\x00"


class Listener:
    """A TCP server on 127.0.0.1 that records what clients send. ``mode``: "bolt" answers the Bolt handshake with
    version 5.2 and HELLO with SUCCESS (the client then sends LOGON with its credentials); "http" answers 500 with a plain-text body."""

    def __init__(self, mode: str):
        self.mode, self.received = mode, bytearray()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.hello_answered = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        conn.settimeout(3)
        try:
            if self.mode == "bolt":
                self.received += conn.recv(20)  # magic + four proposed versions
                conn.sendall(b"\x00\x00\x02\x05")  # Bolt 5.2: HELLO, then LOGON with the credentials
            while chunk := conn.recv(65536):
                self.received += chunk
                if self.mode == "bolt" and not self.hello_answered:
                    self.hello_answered = True
                    conn.sendall(BOLT_SUCCESS)
                if self.mode == "http" and b"\r\n\r\n" in self.received:
                    body = INTERNAL_BODY.encode()
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
                    break
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    made = []

    def make(mode):
        made.append(Listener(mode))
        return made[-1]
    yield make
    for one in made:
        one.close()


@pytest.fixture
def at(tmp_path, monkeypatch):
    """The push page over a small embedding file, with stored secrets for configured targets that are not the
    listener (nothing listens on port 9)."""
    ws = Workspace(tmp_path / "work")
    run = ws.new_run_dir("minilm")
    rng = np.random.default_rng(0)
    items = [EmbeddedItem(id=f"recipe-{i}", type="recipe", text="t", embedding=rng.normal(size=8).astype(np.float32))
             for i in range(5)]
    write_embeddings(run, "recipe", items, formats=("json",),
                     meta=make_meta(model="m", dimensions=8, normalized=False, dtype="float32", count=5,
                                    type_="recipe"))
    monkeypatch.setenv("CONSOLE_WORKDIR", str(ws.root))
    for name in ("CONSOLE_PASSWORD", "CONSOLE_PASSWORD_FILE", "NEO4J_USER", "NEO4J_DATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NEO4J_URI", "bolt://127.0.0.1:9")
    monkeypatch.setenv("NEO4J_PASSWORD", STORED_PASSWORD)
    monkeypatch.setenv("BACKEND_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("EMBEDDINGS_IMPORT_TOKEN", STORED_TOKEN)
    app = AppTest.from_file(APP, default_timeout=60).run()
    return app.switch_page("pages/export_push.py").run()


def _button(at, label):
    return next(b for b in at.button if b.label == label)


@pytest.mark.parametrize("button", ["Test connection", "Preview (dry run)"])
def test_a_changed_neo4j_uri_with_an_empty_password_sends_nothing_there(at, listener, button):
    bolt = listener("bolt")
    uri = f"bolt://127.0.0.1:{bolt.port}"
    at.text_input[0].input(uri).run()
    _button(at, button).click().run()
    assert bolt.connections == 0 and STORED_PASSWORD.encode() not in bolt.received
    assert [c.value for c in at.caption if c.value.startswith("Not the configured")] == [
        "Not the configured Neo4j (bolt://127.0.0.1:9): type this server's password (NEO4J_PASSWORD is only sent "
        "to the configured one)."]
    assert [e.value for e in at.error] == [
        f"{uri} is not the configured target (bolt://127.0.0.1:9): NEO4J_PASSWORD is only sent there. Type the "
        "credentials of this target, or set it as the configured one and restart the console"]


def test_a_changed_neo4j_uri_gets_the_typed_password_only(at, listener):
    bolt = listener("bolt")
    at.text_input[0].input(f"bolt://127.0.0.1:{bolt.port}")
    at.text_input[2].input("typed-for-this-server")
    _button(at, "Test connection").click().run()
    assert at.error, [e.value for e in at.error]  # the listener is no Neo4j
    assert bolt.connections, [e.value for e in at.error]
    assert b"typed-for-this-server" in bolt.received  # the typed password did go there (so the listener works)
    assert STORED_PASSWORD.encode() not in bolt.received


def test_a_changed_backend_url_with_an_empty_token_sends_nothing_there(at, listener):
    http = listener("http")
    at.radio[0].set_value("The backend's import endpoint").run()
    url = f"http://127.0.0.1:{http.port}"
    at.text_input[0].input(url).run()
    _button(at, "Preview (dry run)").click().run()
    assert http.connections == 0 and STORED_TOKEN.encode() not in http.received
    assert [e.value for e in at.error] == [
        f"{url}/api/embeddings/import/ is not the configured target (http://127.0.0.1:9): EMBEDDINGS_IMPORT_TOKEN is "
        "only sent there. Type the credentials of this target, or set it as the configured one and restart the "
        "console"]


def test_a_failed_answer_is_a_short_message_not_its_body(at, listener):
    http = listener("http")
    at.radio[0].set_value("The backend's import endpoint").run()
    url = f"http://127.0.0.1:{http.port}"
    at.text_input[0].input(url)
    at.text_input[1].input("typed-token")
    _button(at, "Preview (dry run)").click().run()
    assert [e.value for e in at.error] == [
        f"The backend at {url}/api/embeddings/import/ answered HTTP 500: not an answer of the embeddings import "
        "endpoint: check the URL"]
    assert b"Authorization: Token typed-token" in http.received and STORED_TOKEN.encode() not in http.received


def test_the_configured_target_still_gets_the_stored_secret():
    from console.sinks.push import PushError, credential_for, same_target

    assert credential_for("bolt://127.0.0.1:7687", "", "bolt://127.0.0.1", "pw", "NEO4J_PASSWORD") == "pw"
    assert credential_for("neo4j://LOCALHOST:7687", "", "bolt://localhost:7687", "pw", "NEO4J_PASSWORD") == "pw"
    assert credential_for("http://h:8000/api/embeddings/import/", "", "http://h:8000", "t", "X") == "t"
    assert credential_for("http://evil:8000", "typed", "http://h:8000", "t", "X") == "typed"
    for url, configured in [("bolt://evil:7687", "bolt://h:7687"), ("bolt://h:7688", "bolt://h:7687"),
                            ("https://h:8000", "http://h:8000"), ("http://h.evil:8000", "http://h:8000"),
                            ("http://user@evil:8000", "http://h:8000"), ("", "http://h:8000")]:
        assert not same_target(url, configured)
        with pytest.raises(PushError, match="is not the configured target"):
            credential_for(url, "", configured, "secret", "X")


def test_the_stored_password_can_come_from_a_file_only_its_owner_reads(at, listener, tmp_path, monkeypatch):
    """NEO4J_PASSWORD_FILE instead of NEO4J_PASSWORD in the environment: still only sent to the configured URI."""
    bolt = listener("bolt")
    uri = f"bolt://127.0.0.1:{bolt.port}"
    secret = tmp_path / "neo4j-password"
    secret.write_text("from-the-file\n")
    secret.chmod(0o600)
    monkeypatch.delenv("NEO4J_PASSWORD")
    monkeypatch.setenv("NEO4J_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("NEO4J_URI", uri)  # the listener is the configured server this time
    page = AppTest.from_file(APP, default_timeout=60).run().switch_page("pages/export_push.py").run()
    _button(page, "Test connection").click().run()
    assert b"from-the-file" in bolt.received
    secret.chmod(0o644)
    page = AppTest.from_file(APP, default_timeout=60).run().switch_page("pages/export_push.py").run()
    assert [e.value for e in page.error] == [
        f"NEO4J_PASSWORD_FILE={secret}: group or others may read it (mode 644): run chmod 600 {secret}"]
