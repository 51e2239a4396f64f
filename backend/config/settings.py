"""Settings of the recipe backend, all from the environment (backend/README.md lists every variable).

The data lives in Neo4j (NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE); Django itself keeps nothing in
SQL, so no database is configured. EMBEDDINGS_IMPORT_TOKEN enables the HTTP import endpoint.

DJANGO_DEBUG is off unless set to 1 (Django's debug pages show settings, paths and local variables to anyone).
DJANGO_SECRET_KEY: without one, management commands run with a random key made for that process (they sign
nothing), and serving (config/wsgi.py: gunicorn, runserver) refuses to start unless DJANGO_DEBUG=1.
DJANGO_HTTPS=1: the deployment is served over HTTPS (behind a TLS proxy): redirect to HTTPS, HSTS, secure cookies,
and trust the proxy's X-Forwarded-Proto; `manage.py check --deploy` is then clean with a long secret key.
"""
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = BASE_DIR.parent
_TRUE = ("1", "true", "yes", "on")


def _flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() in _TRUE


def _positive_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


def _positive_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip() or str(default)
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {raw!r}") from None
    if not value > 0:
        raise ImproperlyConfigured(f"{name} must be more than 0, not {value}")
    return value


DEBUG = _flag("DJANGO_DEBUG")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
# True when no DJANGO_SECRET_KEY was given: config/wsgi.py then refuses to serve (unless DEBUG).
SECRET_KEY_IS_EPHEMERAL = not SECRET_KEY
if not SECRET_KEY:
    SECRET_KEY = secrets.token_urlsafe(50)
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
                 if h.strip()]

# -- HTTPS deployment (DJANGO_HTTPS=1): a TLS-terminating proxy in front that sets X-Forwarded-Proto ---------------
HTTPS = _flag("DJANGO_HTTPS")
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = _positive_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "1")
    SECURE_HSTS_PRELOAD = _flag("DJANGO_HSTS_PRELOAD", "1")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

NEO4J = {
    "uri": os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687"),
    "user": os.environ.get("NEO4J_USER", "neo4j"),
    "password": os.environ.get("NEO4J_PASSWORD", ""),
    "database": os.environ.get("NEO4J_DATABASE", "neo4j"),
}
# The graph's description (labels, properties, text, filters: console/demo_schema.toml is the demo's and the default)
GRAPH_SCHEMA_FILE = os.environ.get("GRAPH_SCHEMA_FILE") or None
EMBEDDINGS_IMPORT_TOKEN = os.environ.get("EMBEDDINGS_IMPORT_TOKEN", "")
IMPORT_BATCH_SIZE = _positive_int("EMBEDDINGS_IMPORT_BATCH_SIZE", 2000)
# One import request: at most this many bytes of body and items (413 beyond: send smaller batches). The console's
# push sends 2,000 items per request: ~45 MB of JSON for 1024-d vectors.
IMPORT_MAX_BODY_BYTES = _positive_int("EMBEDDINGS_IMPORT_MAX_BYTES", 64 * 1024 * 1024)
IMPORT_MAX_ITEMS = _positive_int("EMBEDDINGS_IMPORT_MAX_ITEMS", 5000)
IMPORT_REJECTED_SHOWN = 100   # rejected items listed in an import's answer; all are counted by reason
# Search text: longer queries get a 400 (Lucene refuses more than 1,024 clauses; a model reads ~256-512 tokens).
SEARCH_MAX_QUERY_CHARS = _positive_int("SEARCH_MAX_QUERY_CHARS", 500)
SEARCH_MAX_QUERY_TERMS = _positive_int("SEARCH_MAX_QUERY_TERMS", 64)
# Query models: loaded from local files only (a folder, or the Hugging Face cache), never downloaded by a search:
# the backend runs offline whatever its environment says. BACKEND_QUERY_MODELS (comma-separated names or folders):
# when set, the only models the import endpoint records and search loads.
os.environ["HF_HUB_OFFLINE"] = "1"
QUERY_MODELS = [m.strip() for m in os.environ.get("BACKEND_QUERY_MODELS", "").split(",") if m.strip()]
# Who embeds a search query (recipes.query_embedding): "local", this process, with the model's files on this machine;
# or "remote", an OpenAI-compatible embeddings service (`embedding-console serve` on the GPU machine, HF TEI, vLLM,
# Infinity) at BACKEND_EMBEDDINGS_URL, with BACKEND_EMBEDDINGS_API_KEY (sent as a Bearer token) if it needs one.
QUERY_EMBEDDER = os.environ.get("BACKEND_QUERY_EMBEDDER", "local").strip().lower() or "local"
if QUERY_EMBEDDER not in ("local", "remote"):
    raise ImproperlyConfigured(f"BACKEND_QUERY_EMBEDDER must be 'local' or 'remote', not {QUERY_EMBEDDER!r}")
EMBEDDINGS_URL = os.environ.get("BACKEND_EMBEDDINGS_URL", "").strip().rstrip("/").removesuffix("/v1")
if QUERY_EMBEDDER == "remote" and not EMBEDDINGS_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("BACKEND_QUERY_EMBEDDER=remote needs BACKEND_EMBEDDINGS_URL, the service's base URL "
                               f"(e.g. http://gpu-host:8080), not {EMBEDDINGS_URL!r}")
EMBEDDINGS_API_KEY = os.environ.get("BACKEND_EMBEDDINGS_API_KEY", "")
EMBEDDINGS_TIMEOUT = _positive_float("BACKEND_EMBEDDINGS_TIMEOUT", 5.0)  # seconds per query (connect and answer)
# How long a worker serves a type's cached EmbeddingSpace before reading it again with its vector index (SHOW INDEXES:
# an index dropped and made again under another name); a re-import is seen at once anyway, by the search statement's
# stamp (recipes.query_embedding).
SPACE_MAX_AGE_S = _positive_float("BACKEND_SPACE_MAX_AGE_S", 30.0)
# Recent query vectors kept per worker process (keyed by model, dimensions, prompt and text); 0 turns it off.
QUERY_CACHE_SIZE = _positive_int("BACKEND_QUERY_CACHE_SIZE", 1024, minimum=0)


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, "").strip() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


# The query embedder's inference backend and quantisation (the generator's --backend/--quantize; README, CPU
# backends): torch/none by default; BACKEND_QUERY_BACKEND=auto takes the fastest measured at the required fidelity.
from console.options import BACKENDS, QUANTIZATIONS  # noqa: E402

QUERY_BACKEND = _choice("BACKEND_QUERY_BACKEND", "torch", BACKENDS)
QUERY_QUANTIZE = _choice("BACKEND_QUERY_QUANTIZE", "none", QUANTIZATIONS)
# The demo recipes shipped in the repository (data/indonesian-recipes), unless DEMO_DATA_DIR is set.
DEMO_DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR", PROJECT_ROOT / "data" / "indonesian-recipes"))

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our own static files, no CDN
    "recipes",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the WSGI server itself (gunicorn)
    "django.middleware.common.CommonMiddleware",
    # No page posts a form and the API's views are exempt (the import endpoint uses a token, not cookies); the
    # middleware is there so that any form added later is protected.
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "config.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
WSGI_APPLICATION = "config.wsgi.application"
DATABASES = {}
USE_TZ = True
# Static files (the API pages' Swagger UI/ReDoc): `manage.py collectstatic` copies them into STATIC_ROOT (start.sh
# does), and WhiteNoise serves them from there with compression and cache headers when DEBUG is off.
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", BASE_DIR / "staticfiles"))
STORAGES = {"staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"}}
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"



def _rate(name: str, default: str) -> str | None:
    value = os.environ.get(name, default).strip()
    return None if value.lower() in ("", "off", "none", "0") else value


# The throttles' counters: a folder shared by the server's worker processes (gunicorn.conf.py makes one per server
# in BACKEND_CACHE_DIR); without it, each process counts on its own (LocMemCache).
_CACHE_DIR = os.environ.get("BACKEND_CACHE_DIR", "")
CACHES = {"default": (
    # one small file per client address and scope; past MAX_ENTRIES a third are dropped (their counts restart)
    {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": _CACHE_DIR,
     "OPTIONS": {"MAX_ENTRIES": 5000}}
    if _CACHE_DIR else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
)}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["recipes.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "recipes.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Requests per client address ("N/s", "N/min", "N/hour"; "off" for none). Clients are told apart by the
    # address that connected, or by X-Forwarded-For when BACKEND_NUM_PROXIES says how many proxies are in front.
    "DEFAULT_THROTTLE_RATES": {
        "search": _rate("BACKEND_THROTTLE_SEARCH", "300/min"),    # semantic and keyword search, the search page
        "similar": _rate("BACKEND_THROTTLE_SIMILAR", "300/min"),  # similar items, the item page
        "import": _rate("BACKEND_THROTTLE_IMPORT", "600/min"),    # the import endpoint (one push batch a request)
    },
    "NUM_PROXIES": int(os.environ.get("BACKEND_NUM_PROXIES", "0")),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Recipe graph API",
    "DESCRIPTION": "Keyword and semantic search over the recipe graph in Neo4j, similar items, and the import of "
                   "embeddings made by the embedding console.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {"neo4j": {"level": "WARNING"}},
}
