"""What the tests share. Helpers are plain modules, imported by the tests that use them; fixtures are
pytest plugins, registered once by ``pytest_plugins`` in tests/conftest.py. A test module never
imports another test module, and nothing here imports one (tests/unit/test_test_layout.py holds
both): what two test modules need lives here.

Every tier loads the plugins, the pure unit tier included, so a plugin imports nothing heavy at the
top (the local stack, httpx, boto3, anthropic and chatcore are imported by the fixtures that use them).
"""
