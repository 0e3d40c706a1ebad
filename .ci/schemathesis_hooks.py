"""Loaded by schemathesis (SCHEMATHESIS_HOOKS) in .ci/schemathesis.sh.

Works around a tool crash, not an API finding: on CPython 3.11, Hypothesis sometimes fails to
describe a lambda while parsing a large source file deep in the stack ("SystemError: AST
constructor recursion depth mismatch"), and schemathesis reports that as a runtime error. The
description is only used in messages, so an unknown one is harmless.
"""

from hypothesis.internal import lambda_sources

_describe = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe(f, *args, **kwargs)
    except (SystemError, RecursionError):
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description
