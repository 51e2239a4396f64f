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

from embedding_search.conf import positive_int  # the app's reader of whole numbers, one definition

BASE_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = BASE_DIR.parent
_TRUE = ("1", "true", "yes", "on")


def _flag(name: str, default: str = "0") -> bool:
    return os.environ.get(name, default).strip().lower() in _TRUE


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
    SECURE_HSTS_SECONDS = positive_int("DJANGO_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "1")
    SECURE_HSTS_PRELOAD = _flag("DJANGO_HSTS_PRELOAD", "1")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# The embedding_search app's own settings (Neo4j, graph schema, import, search, query embedding, throttles) are
# read by embedding_search.conf: from here when set, else from their environment variables (backend/README.md).
# The demo recipes shipped in the repository (data/indonesian-recipes), unless DEMO_DATA_DIR is set.
DEMO_DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR", PROJECT_ROOT / "data" / "indonesian-recipes"))

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our own static files, no CDN
    "embedding_search",  # the reusable app: search, similar items, export/import commands, the pages
    "recipes",  # the demo's own: load_demo_data
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



# The throttles' counters: a folder shared by the server's worker processes (gunicorn.conf.py makes one per server
# in BACKEND_CACHE_DIR); without it, each process counts on its own (LocMemCache).
_CACHE_DIR = os.environ.get("BACKEND_CACHE_DIR", "")
CACHES = {"default": (
    # one small file per client address and scope; past MAX_ENTRIES a third are dropped (their counts restart)
    {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": _CACHE_DIR,
     "OPTIONS": {"MAX_ENTRIES": 5000}}
    if _CACHE_DIR else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
)}

# The app's API views carry their own DRF settings (embedding_search.api.AppView); the project's are only these:
REST_FRAMEWORK = {
    "UNAUTHENTICATED_USER": None,  # no django.contrib.auth in this project
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Clients (throttles count per address) are told apart by the address that connected, or by X-Forwarded-For
    # when BACKEND_NUM_PROXIES says how many proxies are in front.
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
