"""The compiled part of lmes: the log reader's line scan (everything else is in pyproject.toml)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "logs_parsers._linescan",
            sources=["logs_parsers/_linescan.c"],
        )
    ]
)
