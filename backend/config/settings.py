"""Settings of the recipe backend, all from the environment.

The data lives in Neo4j (NEO4J_URI, NEO4J_USER, NEO4J_PASSWORD, NEO4J_DATABASE); Django itself keeps nothing in
SQL, so no database is configured. EMBEDDINGS_IMPORT_TOKEN enables the HTTP import endpoint. DJANGO_DEBUG (default
on, for a local server) and DJANGO_SECRET_KEY: with DJANGO_DEBUG=0 a secret key must be set.
"""
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = BASE_DIR.parent

DEBUG = os.environ.get("DJANGO_DEBUG", "1").lower() in ("1", "true", "yes", "on")
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY (a long random string): DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-set-DJANGO_SECRET_KEY-in-production"
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]

NEO4J = {
    "uri": os.environ.get("NEO4J_URI", "bolt://127.0.0.1:7687"),
    "user": os.environ.get("NEO4J_USER", "neo4j"),
    "password": os.environ.get("NEO4J_PASSWORD", ""),
    "database": os.environ.get("NEO4J_DATABASE", "neo4j"),
}
EMBEDDINGS_IMPORT_TOKEN = os.environ.get("EMBEDDINGS_IMPORT_TOKEN", "")
IMPORT_BATCH_SIZE = int(os.environ.get("EMBEDDINGS_IMPORT_BATCH_SIZE", "2000"))
# The demo recipes shipped in the repository (data/indonesian-recipes), unless DEMO_DATA_DIR is set.
DEMO_DATA_DIR = Path(os.environ.get("DEMO_DATA_DIR", PROJECT_ROOT / "data" / "indonesian-recipes"))
# A push sends up to a few thousand 1024-d vectors per request (~25 MB of JSON).
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DJANGO_MAX_UPLOAD_BYTES", str(256 * 1024 * 1024)))

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

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "recipes.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
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
