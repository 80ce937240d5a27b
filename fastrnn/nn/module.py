"""The module system: :class:`Parameter`, :class:`Module`, :class:`Sequential`,
and pickle-free saving (:func:`save` / :func:`load`).

A :class:`Module` registers the :class:`Parameter` and :class:`Module` values set
as its attributes, in order, and names them like PyTorch (``0.weight``,
``encoder.weight_ih_l0``), so a torch ``state_dict`` loads unchanged into a layer
with the same structure. Layers compute their own backward: ``backward(dy)``
returns the gradient of the layer input and accumulates ``.grad`` on every
parameter (there is no autograd graph).

Saving writes one ``.npz`` file (readable with ``np.load(path, allow_pickle=False)``)
holding every parameter plus a JSON entry describing how to rebuild the module:
its class and its constructor arguments (:meth:`Module.config`). :func:`load`
finds the class in a registry that every ``Module`` subclass joins automatically
when it is defined, builds it from the config and loads the weights.
"""
import inspect
import json
import os
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

__all__ = ["Parameter", "Module", "Sequential", "StateDictError", "IncompatibleKeys",
           "save", "load"]


# --------------------------------------------------------------------------- Parameter

def _float_data(name, value):
    """``value`` as a writeable C-contiguous floating-point ndarray (no dtype change)."""
    if isinstance(value, Parameter):
        value = value.data
    try:
        array = np.asarray(value)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like, got {type(value).__name__}: {exc}") from None
    if array.dtype.kind != "f":
        raise TypeError(f"{name} must hold floating-point values, got dtype {array.dtype} "
                        "(fastrnn never casts silently: convert it with .astype(...))")
    if not array.flags.c_contiguous or not array.flags.writeable:
        array = np.array(array, order="C", copy=True)
    return array


class Parameter:
    """A trainable array: ``.data`` (the values) and ``.grad`` (their gradient).

    ``Parameter(data)`` wraps ``data`` without copying when it already is a
    writeable C-contiguous floating-point ndarray (otherwise it stores a
    C-contiguous copy); the dtype is kept as given (float32 or float64 in
    fastrnn's layers), never converted. ``.grad`` is None until a gradient is
    accumulated with :meth:`accumulate_grad`; it then has the shape and dtype of
    ``.data``. ``np.asarray(p)`` gives ``p.data`` (no copy).
    """

    __slots__ = ("_data", "_grad")

    def __init__(self, data):
        self._data = _float_data("data", data)
        self._grad = None

    # -- values
    @property
    def data(self):
        """The values, a C-contiguous floating-point ndarray. Assigning a new array
        replaces them (the gradient is dropped when its shape or dtype changes);
        to keep the array's identity write into it instead (``p.data[...] = v``)."""
        return self._data

    @data.setter
    def data(self, value):
        array = _float_data("data", value)
        if self._grad is not None and (self._grad.shape != array.shape or self._grad.dtype != array.dtype):
            self._grad = None
        self._data = array

    @property
    def grad(self):
        """Accumulated gradient (same shape and dtype as ``.data``) or None."""
        return self._grad

    @grad.setter
    def grad(self, value):
        if value is not None:
            value = self._check_grad("grad", value)
        self._grad = value

    @property
    def shape(self):
        """Shape of ``.data`` (a tuple)."""
        return self._data.shape

    @property
    def dtype(self):
        """dtype of ``.data``."""
        return self._data.dtype

    @property
    def ndim(self):
        """Number of dimensions of ``.data``."""
        return self._data.ndim

    @property
    def size(self):
        """Number of elements of ``.data``."""
        return self._data.size

    # -- gradients
    def _check_grad(self, name, value):
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{name} must be a NumPy array, got {type(value).__name__}")
        if value.dtype != self._data.dtype:
            raise TypeError(f"{name} has dtype {value.dtype} but the parameter has dtype {self._data.dtype}")
        if value.shape != self._data.shape:
            raise ValueError(f"{name} must have the parameter's shape {self._data.shape}, "
                             f"got shape {value.shape}")
        return value

    def accumulate_grad(self, grad, copy=True):
        """Add ``grad`` (same shape and dtype as ``.data``) to ``.grad``.

        The first call stores a copy of ``grad`` (or ``grad`` itself with
        ``copy=False``, for a freshly allocated array the caller will not touch
        again); later calls add into ``.grad`` in place. Raises ``TypeError`` for a
        non-array or a different dtype, ``ValueError`` for a different shape.
        """
        grad = self._check_grad("grad", grad)
        if self._grad is None:
            self._grad = np.array(grad, order="C", copy=True) if copy else grad
        else:
            self._grad += grad
        return self._grad

    def zero_grad(self, set_to_none=True):
        """Reset the gradient: to None (default) or, with ``set_to_none=False``, to zeros in place."""
        if set_to_none or self._grad is None:
            self._grad = None
        else:
            self._grad[...] = 0

    def __array__(self, dtype=None, copy=None):
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        return np.asarray(self._data, dtype=dtype)

    def __repr__(self):
        return f"Parameter containing:\n{self._data!r}"


# --------------------------------------------------------------------------- Module

_REGISTRY = {}  # (module name, qualified class name) -> Module subclass


def _lookup_class(module_name, class_name):
    """The registered Module subclass saved as ``module_name.class_name``, or None.

    Exact match first; otherwise a unique class with that qualified name in any
    module (so a file saved from ``__main__`` loads where the class is imported)."""
    cls = _REGISTRY.get((module_name, class_name))
    if cls is not None:
        return cls
    matches = [c for (_, qualname), c in _REGISTRY.items() if qualname == class_name]
    return matches[0] if len(matches) == 1 else None


class StateDictError(KeyError, ValueError):
    """Raised by :meth:`Module.load_state_dict`; lists every bad key at once.

    A subclass of both ``KeyError`` and ``ValueError`` so either catches it.
    ``missing_keys``, ``unexpected_keys`` and ``bad_keys`` (name -> reason) hold the
    details."""

    def __init__(self, message, missing_keys=(), unexpected_keys=(), bad_keys=None):
        super().__init__(message)
        self.message = message
        self.missing_keys = list(missing_keys)
        self.unexpected_keys = list(unexpected_keys)
        self.bad_keys = dict(bad_keys or {})

    def __str__(self):  # KeyError would print the repr of the message
        return self.message


class IncompatibleKeys(NamedTuple):
    """What :meth:`Module.load_state_dict` returns: keys it ignored (``strict=False``)."""
    missing_keys: list
    unexpected_keys: list


def _as_array(value):
    """An array-like state_dict value as an ndarray; torch tensors via ``.detach().cpu()``."""
    if hasattr(value, "detach"):  # a torch tensor (torch is never imported here)
        value = value.detach()
        if hasattr(value, "cpu"):
            value = value.cpu()
    if isinstance(value, Parameter):
        value = value.data
    return np.asarray(value)


def _check_name(kind, name):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name must be a string, got {type(name).__name__}")
    if not name or "." in name:
        raise KeyError(f"{kind} name must be a non-empty string without '.', got {name!r}")


def _addindent(text, spaces):
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    return lines[0] + "\n" + "\n".join(" " * spaces + line for line in lines[1:])


class Module:
    """Base class of every layer and model.

    Subclasses call ``super().__init__()`` first, then set their parameters and
    submodules as attributes; they are registered in that order::

        class Net(fastrnn.nn.Module):
            def __init__(self, n_in, n_out):
                super().__init__()
                self.hidden = Linear(n_in, 32)
                self.out = Linear(32, n_out)

            def config(self):       # constructor arguments, for save/load
                return {"n_in": self.hidden.in_features, "n_out": self.out.out_features}

            def forward(self, x):
                return self.out(self.hidden(x))

            def backward(self, dy):
                return self.hidden.backward(self.out.backward(dy))

    Calling the module calls :meth:`forward`. Modules start in training mode;
    :meth:`eval` switches off training behaviour (dropout, caching for backward) in
    the module and all its submodules.

    Every subclass joins the registry that :func:`load` rebuilds modules from
    (``class Foo(Module, register=False)`` opts out). See :meth:`config`.
    """

    def __init_subclass__(cls, register=True, **kwargs):
        super().__init_subclass__(**kwargs)
        if register:
            _REGISTRY[(cls.__module__, cls.__qualname__)] = cls

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration
    def _registries(self, name):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() has run: "
                                 f"call super().__init__() first in {type(self).__name__}.__init__")
        return d["_parameters"], d["_modules"]

    def register_parameter(self, name, param):
        """Register ``param`` (a :class:`Parameter` or None) under ``name``.

        None keeps the slot (``module.name`` is None) but lists no parameter, as
        torch does for ``bias=False``."""
        params, modules = self._registries(name)
        _check_name("parameter", name)
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot register {type(param).__name__} as parameter {name!r}: "
                            "expected a fastrnn.nn.Parameter or None")
        if name in modules or (name in self.__dict__ and name not in params):
            raise KeyError(f"attribute {name!r} already exists")
        params[name] = param

    def register_module(self, name, module):
        """Register ``module`` (a :class:`Module` or None) as a child named ``name``."""
        params, modules = self._registries(name)
        _check_name("module", name)
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"cannot register {type(module).__name__} as submodule {name!r}: "
                            "expected a fastrnn.nn.Module or None")
        if name in params or (name in self.__dict__ and name not in modules):
            raise KeyError(f"attribute {name!r} already exists")
        modules[name] = module

    add_module = register_module

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            params, modules = self._registries(name)
            self.__dict__.pop(name, None)
            modules.pop(name, None)
            self.register_parameter(name, value)
        elif isinstance(value, Module):
            params, modules = self._registries(name)
            self.__dict__.pop(name, None)
            params.pop(name, None)
            self.register_module(name, value)
        else:
            params = self.__dict__.get("_parameters", {})
            modules = self.__dict__.get("_modules", {})
            if name in params:
                if value is not None:
                    raise TypeError(f"cannot assign {type(value).__name__} to parameter {name!r}: "
                                    "expected a fastrnn.nn.Parameter or None")
                params[name] = None
            elif name in modules:
                if value is not None:
                    raise TypeError(f"cannot assign {type(value).__name__} to submodule {name!r}: "
                                    "expected a fastrnn.nn.Module or None")
                modules[name] = None
            else:
                object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only called when normal lookup fails
        d = self.__dict__
        if name in d.get("_parameters", ()):
            return d["_parameters"][name]
        if name in d.get("_modules", ()):
            return d["_modules"][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        if name in self.__dict__.get("_parameters", ()):
            del self._parameters[name]
        elif name in self.__dict__.get("_modules", ()):
            del self._modules[name]
        else:
            object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._modules))

    # -- traversal
    def named_parameters(self, prefix="", recurse=True):
        """Yield ``(name, Parameter)`` pairs, dotted names, registration order, each
        parameter once (a parameter shared by two modules appears under its first name)."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse=True):
        """Yield every :class:`Parameter` once, in registration order."""
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_children(self):
        """Yield ``(name, module)`` for the direct submodules."""
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        """Yield the direct submodules."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix="", _seen=None):
        """Yield ``(dotted name, module)`` for this module (name ``prefix``, '' by
        default) and every submodule, depth first, each module once."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is not None:
                yield from module.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self):
        """Yield this module and every submodule, depth first."""
        for _, module in self.named_modules():
            yield module

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule, then on this module; returns self."""
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self

    # -- modes and gradients
    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode on this module and
        all submodules; returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
        object.__setattr__(self, "training", bool(mode))
        for module in self.children():
            module.train(mode)
        return self

    def eval(self):
        """Evaluation mode (same as ``train(False)``); returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        """Reset the gradient of every parameter (to None by default, as torch does)."""
        for param in self.parameters():
            param.zero_grad(set_to_none)

    # -- computation
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        """The module's computation; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def backward(self, *args, **kwargs):
        """Gradient of the input given the gradient of the output of the last
        training-mode forward; accumulates ``.grad`` on the parameters. Subclasses
        define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward()")

    # -- state
    def _all_named_parameters(self):
        """Every (dotted name, Parameter) including repeats of shared parameters."""
        for module_prefix, module in self.named_modules():
            for name, param in module._parameters.items():
                if param is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def state_dict(self):
        """``OrderedDict`` of dotted parameter name -> a copy of its values (ndarray).

        Shared parameters appear under every name, as in torch."""
        return OrderedDict((name, param.data.copy()) for name, param in self._all_named_parameters())

    def load_state_dict(self, state_dict, strict=True):
        """Copy the values of ``state_dict`` (name -> array-like) into the parameters.

        Values may be NumPy arrays, anything ``np.asarray`` accepts, or torch tensors
        (converted through ``np.asarray(t.detach().cpu())``; torch is not imported).
        Each value must have the parameter's shape and a floating-point dtype;
        floating-point values of another precision are **cast to the parameter's
        dtype** (a float64 torch state_dict loads into a float32 layer); integer,
        bool or complex values are rejected. Values are copied into the existing
        arrays: parameters and their ``.data`` keep their identity.

        Everything is checked before anything is copied. On any problem raises one
        :class:`StateDictError` (a ``KeyError`` and a ``ValueError``) listing every
        missing, unexpected, mis-shaped and mis-typed key. With ``strict=False``
        missing and unexpected keys are ignored (and returned) but wrong shapes and
        dtypes still raise. Returns ``IncompatibleKeys(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a mapping of name -> array, got {type(state_dict).__name__}")
        own = OrderedDict(self._all_named_parameters())
        missing = [name for name in own if name not in state_dict]
        unexpected = [key for key in state_dict if key not in own]
        bad, values = OrderedDict(), {}
        for name, param in own.items():
            if name not in state_dict:
                continue
            try:
                value = _as_array(state_dict[name])
            except Exception as exc:
                bad[name] = f"cannot convert {type(state_dict[name]).__name__} to an array ({exc})"
                continue
            if value.dtype.kind != param.dtype.kind:
                bad[name] = (f"dtype {value.dtype} is not floating-point like the parameter's "
                             f"{param.dtype}")
            elif value.shape != param.shape:
                bad[name] = f"shape {value.shape}, expected {param.shape}"
            else:
                values[name] = value
        if bad or (strict and (missing or unexpected)):
            lines = [f"Error(s) in loading state_dict for {type(self).__name__}:"]
            if strict and missing:
                lines.append(f"  missing keys ({len(missing)}): " + ", ".join(map(repr, missing)))
            if strict and unexpected:
                lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(map(repr, unexpected)))
            if bad:
                lines.append(f"  wrong values ({len(bad)}):")
                lines.extend(f"    {name!r}: {reason}" for name, reason in bad.items())
            raise StateDictError("\n".join(lines), missing if strict else (),
                                 unexpected if strict else (), bad)
        for name, value in values.items():
            np.copyto(own[name].data, value, casting="same_kind")
        return IncompatibleKeys(missing, unexpected)

    # -- configuration, saving
    def config(self):
        """Constructor keyword arguments that rebuild an equivalent module.

        :func:`save` stores it as JSON and :func:`load` calls
        ``type(self).from_config(config)`` (by default ``cls(**config)``), then loads
        the saved weights into the result. The rebuilt module must have the same
        parameter names and shapes. Values may be None, bool, int, float, str,
        NumPy scalars and dtypes (``np.float32`` comes back as ``np.dtype('float32')``),
        tuples, lists, str-keyed dicts, and Modules (stored by their own class and
        config; their weights travel in the parent's state_dict).

        Subclasses either override this method or set ``self._config = {...}`` in
        ``__init__``. The default returns ``self._config`` when set, ``{}`` when the
        constructor takes no arguments, and raises ``NotImplementedError`` otherwise.
        """
        stored = self.__dict__.get("_config")
        if stored is not None:
            return dict(stored)
        signature = inspect.signature(type(self).__init__)
        if len(signature.parameters) <= 1:  # only self
            return {}
        raise NotImplementedError(
            f"{type(self).__name__} does not describe its constructor arguments: define "
            "config() returning them as a dict (or set self._config in __init__) to save it")

    @classmethod
    def from_config(cls, config):
        """Build a module from :meth:`config`'s dict; ``cls(**config)`` unless overridden."""
        return cls(**config)

    def save(self, path):
        """Save this module to ``path`` (see :func:`save`)."""
        save(self, path)

    @classmethod
    def load(cls, path):
        """Load a module saved with :func:`save`, checking it is an instance of ``cls``.

        A classmethod: ``model = fastrnn.nn.Linear.load(path)`` returns a new module."""
        module = load(path)
        if not isinstance(module, cls):
            raise ValueError(f"{_file_name(path)}: holds a {type(module).__name__}, "
                             f"not a {cls.__name__}")
        return module

    # -- display
    def extra_repr(self):
        """One-line (or multi-line) description shown inside ``repr``; subclasses override."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): {_addindent(repr(module), 2)}" for name, module in self._modules.items()]
        body = lines + children
        if not body:
            return f"{type(self).__name__}()"
        if len(lines) == 1 and not children:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(body) + "\n)"


# --------------------------------------------------------------------------- Sequential

class Sequential(Module):
    """Modules applied one after another.

    ``Sequential(m0, m1, ...)`` names the children ``'0'``, ``'1'``, ...;
    ``Sequential(OrderedDict(name=module, ...))`` keeps the given names.
    ``forward(x)`` feeds each child the previous child's output; ``backward(dy)``
    runs the children's ``backward`` in reverse order and returns the last result
    (the gradient of the first child's input). Supports ``len``, iteration,
    ``seq[i]`` (negative too) and ``seq[a:b]`` (a Sequential sharing the modules).
    """

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, module in modules[0].items():
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential child {name!r} must be a fastrnn.nn.Module, "
                                    f"got {type(module).__name__}")
                self.register_module(name, module)
        else:
            for index, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential argument {index} must be a fastrnn.nn.Module, "
                                    f"got {type(module).__name__}")
                self.register_module(str(index), module)

    def append(self, module):
        """Add ``module`` at the end (named by its position); returns self."""
        if not isinstance(module, Module):
            raise TypeError(f"module must be a fastrnn.nn.Module, got {type(module).__name__}")
        self.register_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential indices must be integers or slices, got {type(index).__name__}")
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of length {len(items)}")
        return items[index][1]

    def forward(self, x):
        """Apply each child in order: ``x -> m0(x) -> m1(m0(x)) -> ...``."""
        for module in self:
            x = module(x)
        return x

    def backward(self, dy):
        """Run each child's ``backward`` in reverse order, feeding it the previous result."""
        for module in reversed(list(self)):
            dy = module.backward(dy)
        return dy

    def config(self):
        """``{"modules": OrderedDict(name -> module)}`` (children saved by class and config)."""
        return {"modules": OrderedDict(self._modules)}

    @classmethod
    def from_config(cls, config):
        """Rebuild from :meth:`config`'s ``{"modules": {name: module}}``."""
        return cls(OrderedDict(config["modules"]))


# --------------------------------------------------------------------------- save / load

_CONFIG_KEY = "__fastrnn_config__"
_FORMAT = "fastrnn.nn/1"
_MARKERS = ("__module__", "__dtype__", "__tuple__")


def _file_name(path):
    if isinstance(path, (str, bytes, os.PathLike)):
        return repr(os.fsdecode(path))
    return repr(getattr(path, "name", path))


def _spec(module):
    cls = type(module)
    if _REGISTRY.get((cls.__module__, cls.__qualname__)) is not cls:
        raise TypeError(f"cannot save {cls.__qualname__}: the class is not in the module registry "
                        "(it was defined with register=False, or another class of the same "
                        "name replaced it)")
    config = module.config()
    if not isinstance(config, Mapping):
        raise TypeError(f"{cls.__qualname__}.config() must return a dict, got {type(config).__name__}")
    return {"class": cls.__qualname__, "module": cls.__module__,
            "config": _encode(config, f"{cls.__qualname__}.config()")}


def _encode(value, where):
    """``value`` as JSON-ready data; Modules, dtypes and tuples become tagged dicts."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, Module):
        return {"__module__": _spec(value)}
    if isinstance(value, np.dtype) or (isinstance(value, type) and issubclass(value, np.generic)):
        return {"__dtype__": np.dtype(value).name}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or key in _MARKERS:
                raise TypeError(f"{where}: dict keys must be strings other than {_MARKERS}, got {key!r}")
            out[key] = _encode(item, f"{where}[{key!r}]")
        return out
    raise TypeError(f"{where}: cannot store a {type(value).__name__} in a JSON config "
                    "(allowed: None, bool, int, float, str, NumPy scalars and dtypes, tuples, "
                    "lists, str-keyed dicts, Modules)")


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (key, item), = value.items()
            if key == "__module__":
                return _build(item)
            if key == "__dtype__":
                return np.dtype(item)
            if key == "__tuple__":
                return tuple(_decode(v) for v in item)
        return {key: _decode(item) for key, item in value.items()}
    return value


class _ConfigError(Exception):
    """A problem in the saved JSON config (turned into ValueError naming the file)."""


def _build(spec):
    if not isinstance(spec, dict) or not {"class", "module", "config"} <= spec.keys():
        raise _ConfigError(f"a module entry must have 'class', 'module' and 'config', got {spec!r:.200}")
    class_name, module_name = spec["class"], spec["module"]
    if not isinstance(class_name, str) or not isinstance(module_name, str):
        raise _ConfigError(f"'class' and 'module' must be strings, got {class_name!r:.100} and {module_name!r:.100}")
    cls = _lookup_class(module_name, class_name)
    if cls is None:
        known = sorted({qualname for _, qualname in _REGISTRY})
        raise _ConfigError(f"unknown module class {class_name!r} (defined in {module_name!r}); import "
                           f"the code that defines it before loading. Known classes: {', '.join(known)}")
    try:
        config = _decode(spec["config"])
    except _ConfigError:
        raise
    except Exception as exc:  # e.g. an unknown dtype name
        raise _ConfigError(f"cannot decode the config of {class_name}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(config, dict):
        raise _ConfigError(f"the config of {class_name} must be a dict, got {type(config).__name__}")
    try:
        return cls.from_config(config)
    except Exception as exc:
        raise _ConfigError(f"cannot rebuild {class_name} from its config {spec['config']!r:.300}: "
                           f"{type(exc).__name__}: {exc}") from exc


def save(module, path):
    """Save ``module`` to ``path`` as one ``.npz`` file, without pickle.

    The file holds every entry of ``module.state_dict()`` (one ``.npy`` each, under
    its dotted name) plus ``__fastrnn_config__``: a JSON string with the class
    (qualified name and defining module), its :meth:`Module.config` and the
    training flag of every submodule. ``path`` (str or path-like) is used exactly
    as given, no suffix added; the file is written to a temporary name then
    renamed, so a failed save leaves no partial file. ``path`` may also be a
    writable binary file object. Random-number state (e.g. a Dropout's generator)
    is not saved; the seed given to the constructor is, through the config.
    """
    if not isinstance(module, Module):
        raise TypeError(f"module must be a fastrnn.nn.Module, got {type(module).__name__}")
    state = module.state_dict()
    if _CONFIG_KEY in state:
        raise ValueError(f"a parameter is named {_CONFIG_KEY!r}, which save() reserves")
    header = {"format": _FORMAT, **_spec(module),
              "training": {name: m.training for name, m in module.named_modules()}}
    text = json.dumps(header)
    entries = [(_CONFIG_KEY, np.array(text))] + list(state.items())

    def write(file):
        with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in entries:
                with zf.open(name + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)

    if hasattr(path, "write"):
        write(path)
        return
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as file:
            write(file)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load(path):
    """Rebuild the module saved at ``path`` by :func:`save` and load its weights.

    The class is found in the registry of ``Module`` subclasses (the code defining
    it must have been imported; nothing is imported or unpickled from the file),
    built with ``cls.from_config(config)`` and filled with ``load_state_dict``
    (strict). ``path`` may also be a readable binary file object.

    Raises ``ValueError`` naming the file and the problem for a file that is not a
    valid fastrnn module file (corrupt, truncated, not an ``.npz``, no config
    entry, unreadable JSON), an unknown class, a config the class rejects, or
    weights that do not match the rebuilt module. A missing file raises
    ``FileNotFoundError``.
    """
    name = _file_name(path)
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise _ConfigError("it holds a single array, not an .npz archive")
        with loaded as npz:
            files = list(npz.files)
            if _CONFIG_KEY not in files:
                raise _ConfigError(f"no {_CONFIG_KEY!r} entry (entries: {', '.join(files) or 'none'}); "
                                   "not written by fastrnn.nn.save")
            text = npz[_CONFIG_KEY]
            arrays = OrderedDict((key, npz[key]) for key in files if key != _CONFIG_KEY)
    except _ConfigError as exc:
        raise ValueError(f"{name} is not a fastrnn module file: {exc}") from None
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, pickle refusal, bad headers...
        raise ValueError(f"{name} is not a readable fastrnn module file (corrupt or truncated?): "
                         f"{type(exc).__name__}: {exc}") from exc
    try:
        if text.dtype.kind != "U" or text.ndim != 0:
            raise _ConfigError(f"{_CONFIG_KEY!r} must be a 0-d string array, got "
                               f"dtype {text.dtype} and shape {text.shape}")
        try:
            header = json.loads(str(text[()]))
        except json.JSONDecodeError as exc:
            raise _ConfigError(f"{_CONFIG_KEY!r} is not valid JSON: {exc}") from None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            found = header.get("format") if isinstance(header, dict) else header
            raise _ConfigError(f"unsupported format {found!r:.100}, expected {_FORMAT!r}")
        module = _build(header)
    except _ConfigError as exc:
        raise ValueError(f"{name}: {exc}") from exc.__cause__
    try:
        module.load_state_dict(arrays, strict=True)
    except StateDictError as exc:
        raise ValueError(f"{name}: the saved weights do not match the rebuilt "
                         f"{type(module).__name__}:\n{exc}") from None
    training = header.get("training")
    if isinstance(training, dict):
        for sub_name, sub in module.named_modules():
            flag = training.get(sub_name)
            if isinstance(flag, bool):
                object.__setattr__(sub, "training", flag)
    return module
