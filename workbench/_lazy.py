"""Lazy public names for a package's face (PEP 562): the module that defines a name is imported
on first use, so ``import workbench`` (and its subpackage faces) import nothing heavy."""

from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable, Callable, list[str]]:
    """``__getattr__``, ``__dir__`` and ``__all__`` for a package that exports names lazily.

    Args:
        package: The package's ``__name__``.
        exports: Public name -> the module that defines it.

    Returns:
        ``(__getattr__, __dir__, __all__)`` to assign in the package's ``__init__``.
    """
    names = sorted(exports)

    def __getattr__(name):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__():
        return sorted(set(vars(importlib.import_module(package))) | set(names))

    return __getattr__, __dir__, names
