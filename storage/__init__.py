"""Storage layer: one database (SQLite or PostgreSQL), encrypted bodies, proof ledger.

Open it with :func:`storage.database.open_database`; repositories are one module each
(``accounts``, ``credentials``, ``folders``, ``messages``, ``queue``, ``proofs``,
``traces``) and take an ``AsyncConnection`` so callers choose the transaction.
Only :mod:`storage.engine` knows which engine is in use.
"""
