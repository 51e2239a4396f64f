"""The WSGI application (gunicorn -c backend/gunicorn.conf.py; runserver loads it too).

Serving refuses to start without DJANGO_SECRET_KEY unless DJANGO_DEBUG=1: management commands may run with a
random key of their own (settings.SECRET_KEY_IS_EPHEMERAL), a server must not, because what it signs would not
survive a restart or agree between its worker processes.
"""
import os

# gunicorn imports this from backend/ (gunicorn.conf.py: chdir), runserver through manage.py; the `console` package
# is installed into the environment, so no path is added here.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings  # noqa: E402
from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402

if settings.SECRET_KEY_IS_EPHEMERAL and not settings.DEBUG:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: the backend does not serve without one. Set it to a long random string, "
        "e.g. export DJANGO_SECRET_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(50))')\" "
        "(./start.sh generates one), or DJANGO_DEBUG=1 for a local development server"
    )

application = get_wsgi_application()
