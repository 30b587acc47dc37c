"""The project's boundary with the libraries it builds on: every use of a library's private API
(an underscore name, a value read from the inside of an object) lives in one of these modules, one
per library, each pinned by a test in ``tests/test_adapters.py`` that fails loudly when an upgrade
changes what it relies on. Code elsewhere calls these functions, never the private names.
"""
