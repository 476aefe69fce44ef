"""Signatures and configs written once: constructors that pass arguments on, calls bound by name.

A layer whose constructor hands most of its arguments to another (a recurrent layer to its cell,
a fixed-rank subclass to its generic base) takes them as ``**kwargs`` instead of repeating
them. ``takes_parameters_of`` gives that constructor the full signature all the same, so
``help()``, ``inspect.signature`` and ``keras.layers.Layer``'s own introspection see every
argument with its default; ``constructor_config`` reads the same signature, so a config holds
exactly the arguments the constructor names, no more (a fixed ``rank``) and no fewer.
"""

import inspect

import keras

_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def takes_parameters_of(*sources):
    """Decorates ``__init__(self, <own parameters>, **kwargs)``, which passes ``kwargs`` on.

    Its signature becomes: its own parameters, then every parameter with a default of each of
    ``sources`` (callables), in their order, keyword-only, skipping names already listed; then
    ``**kwargs`` for the rest (the base layer's ``name``, ``dtype``, ...). A parameter without
    a default in a source (``self``, a ``rank`` the subclass fixes) is the decorated
    function's own business.
    """

    def decorate(init):
        parameters = list(inspect.signature(init).parameters.values())
        listed = [p for p in parameters if p.kind != inspect.Parameter.VAR_KEYWORD]
        names = {p.name for p in listed}
        for source in sources:
            for parameter in inspect.signature(source).parameters.values():
                if (
                    parameter.default is inspect.Parameter.empty
                    or parameter.kind in _VARIADIC
                    or parameter.name in names
                ):
                    continue
                names.add(parameter.name)
                listed.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))
        var_keyword = [p for p in parameters if p.kind == inspect.Parameter.VAR_KEYWORD]
        init.__signature__ = inspect.Signature(listed + var_keyword)
        return init

    return decorate


def parameter_names(function):
    """The names ``function`` takes one by one (neither ``self`` nor ``*args``/``**kwargs``)."""
    return [
        name
        for name, parameter in inspect.signature(function).parameters.items()
        if name != "self" and parameter.kind not in _VARIADIC
    ]


def pop_arguments_of(function, kwargs):
    """The entries of ``kwargs`` that ``function`` takes by name, removed from ``kwargs``."""
    return {name: kwargs.pop(name) for name in parameter_names(function) if name in kwargs}


def constructor_config(layer, base_config, arguments):
    """``base_config`` and the entries of ``arguments`` that ``layer``'s constructor names."""
    names = parameter_names(type(layer).__init__)
    return {**base_config, **{name: arguments[name] for name in names if name in arguments}}


def bound_call_arguments(layer, args, kwargs):
    """The arguments of one ``layer.call(*args, **kwargs)`` by name, defaults filled in.

    For ``compute_output_spec``, which Keras calls with the arguments of ``call``: it reads the
    few it needs by name instead of repeating ``call``'s parameter list.
    """
    bound = inspect.signature(layer.call).bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments


def dtype_config(layer):
    """The ``"dtype"`` entry of ``layer.get_config()``, with its quantized sublayers' policies.

    After ``Model.quantize`` the sublayers a layer builds for itself (projections, dense layers)
    hold int8/float8/int4 weights under their own quantized dtype policy, while the layer's
    config still names its float policy: reloaded from that config, the sublayers would be
    rebuilt in float and the quantized weights would fail to load. So once any sublayer is
    quantized the entry becomes a ``keras.dtype_policies.DTypePolicyMap`` from each quantized
    sublayer's path to its policy, the layer's own policy as the default; ``from_config`` hands
    it down to the sublayers, which then build quantized. This is the use Keras documents for
    ``DTypePolicyMap``.
    """
    policy = layer.dtype_policy
    if not isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        quantized = {
            sublayer.path: _own_policy(sublayer)
            for sublayer in layer._flatten_layers(include_self=False)
            if sublayer.quantization_mode is not None
        }
        if quantized:
            policy = keras.dtype_policies.DTypePolicyMap(
                default_policy=policy, policy_map=quantized
            )
    return keras.dtype_policies.serialize(policy)


def _own_policy(layer):
    """``layer``'s dtype policy, looked up by its path when it holds a ``DTypePolicyMap``."""
    policy = layer.dtype_policy
    if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        return policy[layer.path]
    return policy
