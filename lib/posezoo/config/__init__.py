"""Configuration: EasyDict defaults + an experiment YAML + ``KEY VALUE`` overrides.

``load_config`` validates everything once (unknown keys, value types) and returns a
read-only config. Official HRNet / SimpleBaseline / DarkPose / LPN / UDP-Pose YAMLs
load verbatim; SimpleBaseline's spellings are mapped onto HRNet's (see default.py).
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from typing import Any, Iterable, Optional, Sequence

import yaml
from easydict import EasyDict

from .default import _C, ALIASES, HOISTED_FROM_EXTRA

__all__ = ["Config", "ConfigError", "load_config", "update_config", "get_defaults", "read_extra"]

# Nodes whose content is free-form (validated by the component that reads it).
FREE_FORM = ("MODEL.EXTRA",)


class ConfigError(ValueError):
    """A config problem, stated in one line naming the key, value and file."""


class FrozenList(list):
    """A list value of a loaded config: compares like a list, cannot change."""

    def _refuse(self, *args, **kwargs):
        raise AttributeError("config is read-only; derive a new one with update_config(cfg, [KEY, VALUE])")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse

    def __reduce__(self):
        return FrozenList, (list(self),)


class Config(EasyDict):
    """EasyDict that becomes read-only once loaded: config is data, not state."""

    def __setattr__(self, name: str, value: Any) -> None:
        if self.__dict__.get("_frozen"):
            key = self.__dict__.get("_prefix", "") + name
            raise AttributeError(f"config is read-only; use update_config(cfg, ['{key}', value]) instead")
        if isinstance(value, dict) and not isinstance(value, Config):
            value = Config(value)  # EasyDict would make a plain EasyDict here
        super().__setattr__(name, value)

    def __setitem__(self, name: str, value: Any) -> None:
        self.__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if self.__dict__.get("_frozen"):
            raise AttributeError("config is read-only")
        super().__delattr__(name)

    def __ior__(self, other):
        raise AttributeError("config is read-only")

    def __deepcopy__(self, memo: dict) -> "Config":
        return _rebuild(copy.deepcopy(_to_plain(self), memo), self.__dict__.get("_frozen", False))

    def __reduce__(self):
        return _rebuild, (_to_plain(self), self.__dict__.get("_frozen", False))


def _to_plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _to_plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_to_plain(v) for v in node]
    return node


def _rebuild(plain: dict, frozen: bool) -> Config:
    cfg = Config(plain)
    if frozen:
        _freeze(cfg)
    return cfg


def _freeze(node: Config, prefix: str = "") -> None:
    """Make `node` and everything below it read-only (lists become FrozenList)."""
    for key, value in node.items():
        if isinstance(value, Config):
            _freeze(value, f"{prefix}{key}.")
        elif isinstance(value, list):
            dict.__setitem__(node, key, FrozenList(value))
            node.__dict__[key] = node[key]
    node.__dict__["_prefix"] = prefix
    node.__dict__["_frozen"] = True


def get_defaults() -> Config:
    """A fresh, writable copy of the defaults."""
    return Config(_to_plain(_C))


def _all_keys(node: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in node.items():
        full = prefix + k
        keys.append(full)
        if isinstance(v, dict) and full not in FREE_FORM:
            keys += _all_keys(v, full + ".")
    return keys


def _unknown_key_error(full_key: str, where: str) -> ConfigError:
    valid = _all_keys(_C) + list(ALIASES)
    close = difflib.get_close_matches(full_key, valid, n=1, cutoff=0.5)
    if not close:  # a misspelt leaf under the right node, e.g. TEST.FLIPTEST
        leaf = full_key.rsplit(".", 1)[-1]
        close = difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1] for k in valid], n=1, cutoff=0.6)
        close = [k for k in valid if k.rsplit(".", 1)[-1] == close[0]][:1] if close else []
    hint = f"; did you mean {close[0]}?" if close else ""
    return ConfigError(f"unknown config key {full_key} in {where}{hint}")


def _parse_gpus(value: Any, where: str) -> list[int]:
    """GPUS as HRNet writes it ('(0,1,2,3)', a string YAML does not parse) or
    SimpleBaseline ('0,1'), or a list; parsed without eval."""
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return list(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[\(\[]?\s*(\d+\s*,?\s*)*[\)\]]?\s*", value):
        return [int(v) for v in re.findall(r"\d+", value)]
    raise ConfigError(f"GPUS = {value!r} in {where}: expected a list of GPU ids such as [0, 1] or '0,1'")


def _coerce(full_key: str, value: Any, default: Any, where: str) -> Any:
    """Check `value` against the type of `default`; return it in canonical form."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{full_key} = {value!r} in {where}: expected {expected}")

    if full_key == "GPUS":
        return _parse_gpus(value, where)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if isinstance(default, float):
        if isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise bad("a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        if default and all(isinstance(d, int) and not isinstance(d, bool) for d in default):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                raise bad("a list of integers")
        return [list(v) if isinstance(v, tuple) else v for v in value]
    if isinstance(default, dict):
        if not isinstance(value, dict):
            raise bad("a mapping")
        return value
    return value


def _merge(target: Config, source: dict, prefix: str, where: str) -> None:
    for key, value in source.items():
        if not isinstance(key, str):
            raise ConfigError(f"config key {key!r} under {prefix or 'the top level'} in {where} is not a string")
        full = prefix + key
        if full in ALIASES:  # same node, other leaf name
            _merge(target, {ALIASES[full].rsplit(".", 1)[-1]: value}, prefix, where)
            continue
        if key not in target:
            raise _unknown_key_error(full, where)
        default = target[key]
        if full in FREE_FORM:
            if not isinstance(value, dict):
                raise ConfigError(f"{full} = {value!r} in {where}: expected a mapping")
            target[key] = Config(value)
            for hoisted in HOISTED_FROM_EXTRA:
                if hoisted in value:  # SimpleBaseline: MODEL.EXTRA.SIGMA etc.
                    _set_key(target, hoisted, value[hoisted], where, prefix)
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{full} = {value!r} in {where}: expected a mapping of sub-keys")
            _merge(default, value, full + ".", where)
        else:
            target[key] = _coerce(full, value, default, where)


def _set_key(cfg: Config, dotted: str, value: Any, where: str, prefix: str = "") -> None:
    """Set one dotted key (relative to `prefix`) with validation."""
    parts = dotted.split(".")
    node = cfg
    for part in parts[:-1]:
        if part not in node or not isinstance(node[part], dict):
            raise _unknown_key_error(prefix + dotted, where)
        node = node[part]
    _merge(node, {parts[-1]: value}, prefix + ".".join(parts[:-1]) + ("." if len(parts) > 1 else ""), where)


def _set_extra(extra: dict, parts: Sequence[str], value: Any) -> None:
    """Set ``MODEL.EXTRA.<parts>`` in the plain mapping `extra`. A nested key such as
    ``MODEL.EXTRA.STAGE2.NUM_CHANNELS`` walks into the sub-mappings the YAML gave,
    as HRNet's yacs ``merge_from_list`` does; a new leaf is allowed only at the top
    (the model's ``read_extra`` checks it), inside a sub-mapping the key must exist."""
    node = extra
    for depth, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            where = "MODEL.EXTRA." + ".".join(parts[:depth + 1])
            raise ConfigError(f"command line: MODEL.EXTRA.{'.'.join(parts)}: {where} is not a mapping in this config")
        node = node[part]
    if len(parts) > 1 and parts[-1] not in node:
        known = ", ".join(node) or "none"
        raise ConfigError(f"command line: unknown config key MODEL.EXTRA.{'.'.join(parts)}; known: {known}")
    node[parts[-1]] = value


def _apply_opts(cfg: Config, opts: Sequence[str]) -> None:
    if len(opts) % 2:
        raise ConfigError(f"command-line overrides must be KEY VALUE pairs; got an odd list: {list(opts)}")
    for key, raw in zip(opts[0::2], opts[1::2]):
        try:
            value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        except yaml.YAMLError:
            value = raw
        if value is None and isinstance(raw, str):
            value = raw
        if key.startswith("MODEL.EXTRA."):
            extra = _to_plain(cfg.MODEL.EXTRA)
            _set_extra(extra, key[len("MODEL.EXTRA."):].split("."), value)
            _merge(cfg.MODEL, {"EXTRA": extra}, "MODEL.", "command line")
        else:
            _set_key(cfg, key, value, "command line")


def _finalize(cfg: Config) -> None:
    """Derived paths, as HRNet's update_config does with DATA_DIR."""
    if cfg.DATA_DIR:
        cfg.DATASET.ROOT = os.path.join(cfg.DATA_DIR, cfg.DATASET.ROOT)
        if cfg.MODEL.PRETRAINED:
            cfg.MODEL.PRETRAINED = os.path.join(cfg.DATA_DIR, cfg.MODEL.PRETRAINED)
        if cfg.TEST.MODEL_FILE:
            cfg.TEST.MODEL_FILE = os.path.join(cfg.DATA_DIR, cfg.TEST.MODEL_FILE)
        cfg.DATA_DIR = ""  # applied once; re-loading a saved config must not re-join


def load_config(path: Optional[str], opts: Optional[Iterable[Any]] = None) -> Config:
    """Defaults, then the YAML at `path` (None: defaults only), then `opts`
    (a flat ``[KEY, VALUE, ...]`` list as on the command line). Read-only result."""
    cfg = get_defaults()
    if path is not None:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        try:
            with open(path) as f:
                data = yaml.safe_load(f)
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {str(err).splitlines()[0]}") from None
        if data is not None:
            if not isinstance(data, dict):
                raise ConfigError(f"config file {path} must hold a mapping of keys, not {type(data).__name__}")
            _merge(cfg, data, "", path)
    _apply_opts(cfg, list(opts or []))
    _finalize(cfg)
    _freeze(cfg)
    return cfg


def update_config(cfg: Config, opts: Iterable[Any]) -> Config:
    """A new read-only config: `cfg` with the ``[KEY, VALUE, ...]`` overrides."""
    new = Config(_to_plain(cfg))
    _apply_opts(new, list(opts))
    _freeze(new)
    return new


def read_extra(cfg: Config, defaults: dict, owner: str) -> Config:
    """`cfg.MODEL.EXTRA` checked against the fields a model knows (`defaults`),
    with the defaults filled in. The SimpleBaseline fields hoisted to MODEL are
    accepted too. An unknown field is an error naming the closest known one."""
    extra = dict(defaults)
    for key, value in cfg.MODEL.EXTRA.items():
        if key in HOISTED_FROM_EXTRA:
            continue
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=1, cutoff=0.5)
            hint = f"; did you mean MODEL.EXTRA.{close[0]}?" if close else f"; known: {', '.join(defaults)}"
            raise ConfigError(f"unknown config key MODEL.EXTRA.{key} for model {owner}{hint}")
        default = defaults[key]
        extra[key] = value if default is None else _coerce(f"MODEL.EXTRA.{key}", value, default, owner)
    missing = [k for k, v in extra.items() if v is None]
    if missing:
        raise ConfigError(f"model {owner} needs MODEL.EXTRA.{missing[0]} in the config")
    return Config(extra)
