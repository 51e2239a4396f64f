"""Where Neo4j is: ``Neo4jSettings`` from the environment, a mapping (Django settings, Streamlit secrets) or the
``credentials.env`` file that ``scripts/neo4j.sh start`` writes."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from console.errors import Neo4jConfigError


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """The ``export KEY=value`` lines of a shell file such as ``credentials.env`` (``scripts/neo4j.sh env``), as a
    dict; values are unquoted the way the shell would (``shlex``). Other lines are ignored."""
    import shlex

    values = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("export ") and "=" in line:
                key, _, value = line[len("export "):].strip().partition("=")
                values[key] = "".join(shlex.split(value)) if value else ""
    return values


@dataclass(frozen=True)
class Neo4jSettings:
    uri: str = "bolt://127.0.0.1:7687"
    user: str = "neo4j"
    password: str = field(default="", repr=False)
    database: str = "neo4j"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Neo4jSettings":
        """NEO4J_URI / NEO4J_USER / NEO4J_PASSWORD / NEO4J_DATABASE (the local server's: scripts/neo4j.sh env)."""
        env = os.environ if env is None else env
        password = env.get("NEO4J_PASSWORD", "")
        if not password:
            raise Neo4jConfigError(
                "NEO4J_PASSWORD is not set: for the local server run eval \"$(scripts/neo4j.sh env)\", "
                "or set NEO4J_URI, NEO4J_USER and NEO4J_PASSWORD for your own Neo4j or Aura"
            )
        return cls(
            uri=env.get("NEO4J_URI") or cls.uri,
            user=env.get("NEO4J_USER") or cls.user,
            password=password,
            database=env.get("NEO4J_DATABASE") or cls.database,
        )

    @classmethod
    def from_env_file(cls, path: str | os.PathLike) -> "Neo4jSettings":
        """From the ``export NEO4J_...='...'`` lines of a credentials file (``$NEO4J_HOME/credentials.env``, which
        ``scripts/neo4j.sh start`` writes for the server it runs)."""
        return cls.from_env(read_env_file(path))

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Neo4jSettings":
        """From a dict with uri/user/password/database keys (Django settings, Streamlit secrets, test fixtures)."""
        return cls(
            uri=values.get("uri") or cls.uri,
            user=values.get("user") or cls.user,
            password=values.get("password") or "",
            database=values.get("database") or cls.database,
        )
