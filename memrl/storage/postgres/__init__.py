"""The team backend: PostgreSQL with pgvector (optional extra: pip install 'memrl[postgres]')."""

from .backend import PostgresStorage

__all__ = ["PostgresStorage"]
