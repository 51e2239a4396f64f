#!/usr/bin/env python
"""Django's command-line utility for the recipe backend (run it from anywhere: python backend/manage.py ...)."""
import os
import sys
from pathlib import Path

BACKEND = Path(__file__).resolve().parent
sys.path[:0] = [str(BACKEND), str(BACKEND.parent)]  # the project root, so that `console` is importable


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
