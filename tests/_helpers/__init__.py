"""Helpers shared by the tests, imported as ``_helpers.<module>``.

pyproject's ``[tool.pytest.ini_options] pythonpath = ["tests"]`` puts this folder's parent on
``sys.path`` (not the repo root, whose ``datasets/`` folder must not shadow Hugging Face's).
Fixtures stay in the ``conftest.py`` files; plain functions and classes live here.
"""
