"""Components by name: ``MODEL.NAME: pose_resnet`` is ``posezoo/models/pose_resnet.py``.

A name without a dot is a module of the posezoo package for that kind; a dotted
name (``mypkg.my_net``) is imported as is, so a user's module outside the repo
plugs in the same way. Names are resolved by import, never by eval.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from types import ModuleType


class UnknownComponentError(ValueError):
    """A component name that resolves to nothing, with the names that would."""


def import_dotted(name: str, config_key: str) -> ModuleType:
    """Import a user's module by its dotted path, with a one-line error."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and name.startswith(err.name):
            raise UnknownComponentError(f"{config_key} = {name}: cannot import {err.name} "
                                        f"(is it installed or on PYTHONPATH?)") from None
        raise


def build_from_table(table: dict, name: str, config_key: str, factory: str, cfg):
    """``table[name](cfg)``, or a user's dotted module's ``factory(cfg)`` (losses,
    strategies); None when `name` is neither, so the caller lists its choices."""
    if name in table:
        return table[name](cfg)
    if "." in name:
        module = import_dotted(name, config_key)
        if not hasattr(module, factory):
            raise UnknownComponentError(f"{config_key} = {name}: module has no {factory}(cfg)")
        return getattr(module, factory)(cfg)
    return None


def available(kind: str, entry: str) -> list[str]:
    """Names of the posezoo modules of `kind` that expose `entry`."""
    package = importlib.import_module(f"posezoo.{kind}")
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"posezoo.{kind}.{info.name}")
        if hasattr(module, entry):
            names.append(info.name)
    return sorted(names)


def resolve(kind: str, name: str, entry: str, config_key: str) -> ModuleType:
    """The module called `name` for component `kind`, checked to expose `entry`."""
    if not isinstance(name, str) or not name:
        raise UnknownComponentError(f"{config_key} is empty; available: {', '.join(available(kind, entry))}")
    if "." in name:
        module = import_dotted(name, config_key)
    else:
        if not name.isidentifier() or importlib.util.find_spec(f"posezoo.{kind}.{name}") is None:
            raise UnknownComponentError(f"{config_key} = {name} is not a posezoo {kind[:-1]}; "
                                        f"available: {', '.join(available(kind, entry))}")
        module = importlib.import_module(f"posezoo.{kind}.{name}")
    if not hasattr(module, entry):
        raise UnknownComponentError(f"{config_key} = {name}: module {module.__name__} has no {entry}()")
    return module
