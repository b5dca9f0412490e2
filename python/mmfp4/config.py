"""model.config: a read-only view of the parsed config.json (transformers' names) and of the engine's memory plan.

Everything in it was fixed when the model was loaded: memory is planned and allocated once at load (weights, a
pool of KV-cache blocks, one activation arena) and reused by every call. So the seed stack's tuning switches have
nothing left to switch: setting one of them is accepted and does nothing (with a warning saying why), so old
scripts run; setting anything else raises AttributeError.
"""

import warnings

# Seed-era switches that name something this engine always does. name -> why setting it changes nothing.
NO_OP_SETTINGS = {
    "enable_memory_pooling": "memory is always pooled: weights, KV-cache blocks and activations are allocated "
                             "once at load and reused by every call",
    "use_cache": "generate() always uses the KV cache; pass use_cache=False to generate() to recompute instead",
}


class Config:
    __slots__ = ("_values",)

    def __init__(self, values: dict):
        object.__setattr__(self, "_values", dict(values))

    def __getattr__(self, name):
        values = object.__getattribute__(self, "_values")
        if name in values:
            return values[name]
        if name in NO_OP_SETTINGS:
            return True
        raise AttributeError(f"model.config has no '{name}' (it has: {', '.join(sorted(values))})")

    def __setattr__(self, name, value):
        if name in NO_OP_SETTINGS:
            warnings.warn(f"model.config.{name} has no effect: {NO_OP_SETTINGS[name]}", stacklevel=2)
            return
        raise AttributeError(f"model.config is read-only: '{name}' is fixed when the model is loaded (load "
                             "options such as max_context and max_batch go to mmfp4.load)")

    def __delattr__(self, name):
        raise AttributeError("model.config is read-only")

    def __getitem__(self, name):
        return self._values[name]

    def __contains__(self, name) -> bool:
        return name in self._values

    def __dir__(self):
        return sorted(self._values)

    def keys(self):
        return self._values.keys()

    def to_dict(self) -> dict:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"mmfp4.Config({self._values['summary']}; {self._values['memory_plan']})"
