#!/usr/bin/env python
"""Django's command-line utility for the recipe backend (run it from anywhere: python backend/manage.py ...)."""
import os
import sys
from pathlib import Path

# This folder, for the Django project (`config`) and app (`recipes`) when run from elsewhere. The `console` package
# is installed into the environment (scripts/setup.sh: pip install -e .), so the project root is not added.
BACKEND = Path(__file__).resolve().parent
if str(BACKEND) not in sys.path:
    sys.path.insert(0, str(BACKEND))


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
