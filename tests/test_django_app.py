"""The backend's Django app installs into a user's own Django project as the README says ("Use it in your own
Django project"): a minimal project made here (its own settings module and urls, the app mounted under /kitchen/,
its Neo4j settings under its own environment names, a template of its own overriding the app's search page), on a
graph of another shape described only by its schema file. The guide's path runs from the project's own manage.py:
export_data_for_embeddings, the generator, import_embeddings --dry-run, import_embeddings; then the project is
served as production serves it (gunicorn, DEBUG off) and answered over HTTP: search in the three modes with a
filter, similar items, the item page, the graph schema and the OpenAPI schema."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from other_graph import OTHER_GRAPH, build_other_graph

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "backend"))

SETTINGS = '''
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = os.environ["KITCHEN_SECRET_KEY"]
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "drf_spectacular",
    "embedding_search",
]
ROOT_URLCONF = "kitchen.urls"
WSGI_APPLICATION = "kitchen.wsgi.application"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [BASE_DIR / "templates"],
              "APP_DIRS": True, "OPTIONS": {}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}}
USE_TZ = True
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}

# the embedding_search app: the Neo4j to use and the graph's description
NEO4J = {"uri": os.environ["KITCHEN_NEO4J_URI"], "user": os.environ["KITCHEN_NEO4J_USER"],
         "password": os.environ["KITCHEN_NEO4J_PASSWORD"], "database": os.environ["KITCHEN_NEO4J_DATABASE"]}
GRAPH_SCHEMA_FILE = BASE_DIR / "graph.toml"
'''

URLS = '''
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("kitchen/", include("embedding_search.urls")),
    path("openapi/", SpectacularAPIView.as_view(), name="schema"),
]
'''

WSGI = '''
import os
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kitchen.settings")
application = get_wsgi_application()
'''

MANAGE = '''
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kitchen.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
'''

OVERRIDE = '''{% extends "embedding_search/base.html" %}
{% block content %}<h1>Kitchen search of our own</h1>
<form method="get" action="{% url 'embedding_search:search' %}"><input type="search" name="q" value="{{ q }}"></form>
<ol>{% for hit in results %}<li><a href="{% url 'embedding_search:item' hit.id %}">{{ hit.title }}</a></li>{% endfor %}</ol>
{% endblock %}
'''


def make_project(folder: Path) -> Path:
    """A user's Django project, as `django-admin startproject` would leave it plus the README's lines."""
    (folder / "kitchen").mkdir(parents=True)
    (folder / "templates" / "embedding_search").mkdir(parents=True)
    files = {"manage.py": MANAGE, "kitchen/__init__.py": "", "kitchen/settings.py": SETTINGS,
             "kitchen/urls.py": URLS, "kitchen/wsgi.py": WSGI, "graph.toml": OTHER_GRAPH,
             "templates/embedding_search/search.html": OVERRIDE}
    for name, text in files.items():
        (folder / name).write_text(text.lstrip("\n"), encoding="utf-8")
    return folder


@pytest.fixture
def kitchen(neo4j_clean, neo4j_settings, tmp_path):
    """The project, its environment (no NEO4J_* variables: the app must take the project's settings), and the
    graph in Neo4j."""
    from console.graphschema import load_schema
    from console.sinks.neo4j.settings import Neo4jSettings
    from console.sinks.neo4j.store import Neo4jStore

    project = make_project(tmp_path / "site")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NEO4J_", "DJANGO_", "GRAPH_SCHEMA", "PYTHONPATH"))}
    env.update({"KITCHEN_SECRET_KEY": "kitchen-test-key", "HF_HUB_OFFLINE": "1",
                **{f"KITCHEN_NEO4J_{k.upper()}": str(v) for k, v in neo4j_settings.items()
                   if k in ("uri", "user", "password", "database")}})
    schema = load_schema(project / "graph.toml")
    with Neo4jStore(Neo4jSettings.from_mapping(neo4j_settings), schema=schema) as store:
        rows = build_other_graph(store)
        yield project, env, rows, store


def run(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_the_app_runs_the_guide_s_path_in_a_project_of_the_user_s_own(kitchen, minilm_path, tmp_path):
    from recipes.testing import free_port, run_server

    project, env, rows, store = kitchen
    run(project, env, "manage.py", "export_data_for_embeddings", "--output-dir", "embedding_data")
    dishes = json.loads((project / "embedding_data" / "dish.json").read_text())
    assert sorted(d["id"] for d in dishes) == sorted(r["code"] for r in rows)
    run(project, {**env, "GRAPH_SCHEMA_FILE": str(project / "graph.toml")},
        str(ROOT / "external_embedding_generator.py"), "--input-dir", "embedding_data", "--output-dir",
        "embeddings_output", "--batch-size", "8", "--model", str(minilm_path))
    made = project / "embeddings_output" / "embeddings_dish.json"
    dry = run(project, env, "manage.py", "import_embeddings", "--embedding-file", str(made), "--dry-run")
    assert store.query("MATCH (d:Dish) WHERE d.vec IS NOT NULL RETURN count(d) AS n")[0]["n"] == 0, dry.stdout
    run(project, env, "manage.py", "import_embeddings", "--embedding-file", str(made))
    assert store.query("MATCH (d:Dish) WHERE d.vec IS NOT NULL RETURN count(d) AS n")[0]["n"] == len(rows)

    port = free_port()
    server = [sys.executable, "-m", "gunicorn", "--chdir", str(project), "--bind", f"127.0.0.1:{port}",
              "--workers", "1", "kitchen.wsgi:application"]
    with run_server(server, env, f"http://127.0.0.1:{port}", "/openapi/", log_path=tmp_path / "gunicorn.log") as url:
        check_answers(url + "/kitchen", rows)
        openapi = requests.get(url + "/openapi/?format=json", timeout=30).json()
        assert "/kitchen/api/semantic-search/" in openapi["paths"]
        params = {p["name"] for p in openapi["paths"]["/kitchen/api/search/"]["get"]["parameters"]}
        assert {"q", "mode", "type", "bahan"} <= params


def check_answers(base: str, rows: list[dict]) -> None:
    tempe = {r["code"] for r in rows if "tempe" in r["bahan"]}
    first = rows[1]  # a dish with tempe
    word = first["nama"].split()[0]
    for mode in ("keyword", "semantic", "hybrid"):
        answer = requests.get(f"{base}/api/search/", params={"q": first["nama"], "mode": mode, "type": "dish",
                                                             "bahan": "tempe", "k": 5}, timeout=60)
        assert answer.status_code == 200, (mode, answer.text)
        hits = answer.json()["results"]
        assert hits and {h["id"] for h in hits} <= tempe, (mode, hits)
        assert first["code"] in [h["id"] for h in hits][: 1 if mode == "keyword" else 5], (mode, hits)
    similar = requests.get(f"{base}/api/items/{first['code']}/similar/", timeout=60)
    assert similar.status_code == 200 and first["code"] not in {h["id"] for h in similar.json()["results"]}
    assert len(similar.json()["results"]) == 5
    page = requests.get(f"{base}/items/{first['code']}/", timeout=60)
    assert page.status_code == 200 and first["nama"] in page.text and first["ringkasan"][:30] in page.text
    search_page = requests.get(f"{base}/", params={"q": word}, timeout=60)
    assert "Kitchen search of our own" in search_page.text  # the project's own template, not the app's
    assert f'href="/kitchen/items/' in search_page.text
    schema = requests.get(f"{base}/api/graph-schema/", timeout=30).json()
    assert schema["types"]["dish"]["label"] == "Dish" and schema["types"]["dish"]["vector_index"] == "dish_vectors"
