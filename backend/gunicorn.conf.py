"""gunicorn settings of the recipe backend: `gunicorn -c backend/gunicorn.conf.py` (what start.sh runs).

Every value can be set from the environment, so that a deployment changes numbers, not this file.

- BACKEND_BIND (127.0.0.1:8000): loopback by default; put a reverse proxy with TLS in front for other hosts.
- BACKEND_WORKERS (2): processes. Each one holds its own copy of the query-embedding model (MiniLM ~90 MB,
  Qwen3-Embedding-0.6B ~2.4 GB in float32) and embeds a query on the CPU with all cores, so more workers than
  cores only adds memory; two keeps one worker serving while the other is busy or restarting.
- BACKEND_THREADS (4): threads per worker (gthread). A search spends most of its time waiting on Neo4j or on the
  model's native code, which releases the GIL, so a few threads serve concurrent requests without more copies of
  the model.
- BACKEND_TIMEOUT (300 s): a push of a few thousand 1024-d vectors in one request takes tens of seconds.
- BACKEND_CACHE_DIR: the throttles' counters, shared by the workers (a temporary folder per server when unset).
- BACKEND_CONTROL_SOCKET: gunicorn's control socket (for `gunicornc`); unset: `gunicorn.ctl` in a temporary folder
  of this server's own, so that two backends on one machine (two checkouts, a test run beside a demo) never share
  gunicorn's default `~/.gunicorn/gunicorn.ctl`, where the second would take over, and on stopping remove, the first's.
"""
import os
import tempfile

wsgi_app = "config.wsgi:application"
chdir = os.path.dirname(os.path.abspath(__file__))
bind = os.environ.get("BACKEND_BIND", "127.0.0.1:" + os.environ.get("BACKEND_PORT", "8000"))
workers = int(os.environ.get("BACKEND_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("BACKEND_THREADS", "4"))
timeout = int(os.environ.get("BACKEND_TIMEOUT", "300"))
graceful_timeout = 30
accesslog = "-"
errorlog = "-"

# Each server its own control socket (see BACKEND_CONTROL_SOCKET above), in a folder removed when it stops.
control_socket = os.environ.get("BACKEND_CONTROL_SOCKET") or os.path.join(
    tempfile.mkdtemp(prefix="recipe-backend-ctl-"), "gunicorn.ctl")
_made_control_dir = None if os.environ.get("BACKEND_CONTROL_SOCKET") else os.path.dirname(control_socket)
_made_cache_dir = None


def when_ready(server):
    server.log.info("Control socket: %s", control_socket)


def on_exit(server):
    import shutil

    for folder in (_made_cache_dir, _made_control_dir):
        if folder:
            shutil.rmtree(folder, ignore_errors=True)


# The throttles' counters live in a folder shared by this server's workers (settings.CACHES), made here in the
# master before the workers fork, and removed when the server stops. Set BACKEND_CACHE_DIR to keep your own.
if not os.environ.get("BACKEND_CACHE_DIR"):
    os.environ["BACKEND_CACHE_DIR"] = tempfile.mkdtemp(prefix="recipe-backend-cache-")
    _made_cache_dir = os.environ["BACKEND_CACHE_DIR"]
