"""Process-wide switches: the engine's verbose log and its NaN/Inf tracing."""

import weakref

from . import _mmfp4

_state = {"verbose": False, "check": False}
_initial_level = _mmfp4._log_level()  # from MMFP4_LOG, restored by set_verbose(False)
_models = weakref.WeakSet()           # loaded models, for check_finite()


def set_verbose(on: bool = True) -> None:
    """Engine log on stderr at debug level (MMFP4_LOG=debug): what is loaded, planned and run. Models loaded
    afterwards also log every op with its shape and time (the CLI's --verbose)."""
    _state["verbose"] = bool(on)
    _mmfp4._set_log_level("debug" if on else ("warn" if _initial_level == "debug" else _initial_level))


def check_finite(on: bool = True) -> None:
    """Checks every op's output for NaN/Inf (MMFP4_CHECK=1, the CLI's --check): the first bad value raises
    mmfp4.Error naming layer, op, token position and sequence. Applies to loaded models from their next step
    and to models loaded afterwards. Costs a copy of every activation to the host: for debugging."""
    _state["check"] = bool(on)
    for m in list(_models):
        m._engine.set_check(bool(on))


def defaults() -> dict:
    return dict(_state)


def register(model) -> None:
    _models.add(model)
