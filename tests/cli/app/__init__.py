"""A small application for the command-line tests: models with classified columns,
registered as data-subject models, and retention rules.

The CLI imports it by spec (``--models app.models --app-dir tests/cli``), so it is
imported once per test session: the registries of ``register_subject`` and
``encrypt_rows`` hold one entry per class, and names here are unique to this package.
"""
