"""The one gate between spec names and Python code.

Every name a spec introduces (a block, a network, a parameter, a layer, a
branch, an aux head) passes through ``check_identifier`` during elaboration.
A name that would not be a safe, plain Python identifier in the generated
code is rejected with a file:line:col error, so backends can use IR names
verbatim. ``Namespace`` hands out further unique names for generated locals.
"""

from __future__ import annotations

import builtins
import keyword
import re
from typing import Literal

from dsl.errors import Span, SpecError

_IDENTIFIER = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")

# Public attributes of torch.nn.Module (a test checks that it covers the installed
# torch's; it keeps those older releases lack): a layer so named would shadow a method.
MODULE_ATTRIBUTES = frozenset(
    """T_destination add_module apply bfloat16 buffers call_super_init children
    compile cpu cuda double dump_patches eval extra_repr float forward get_buffer
    get_extra_state get_parameter get_submodule half ipu load_state_dict modules
    mtia named_buffers named_children named_modules named_parameters parameters
    register_backward_hook register_buffer register_forward_hook
    register_forward_pre_hook register_full_backward_hook
    register_full_backward_pre_hook register_load_state_dict_post_hook
    register_load_state_dict_pre_hook register_module register_parameter
    register_state_dict_post_hook register_state_dict_pre_hook requires_grad_
    set_extra_state set_submodule share_memory state_dict to to_empty train type
    xpu zero_grad training""".split()
)

# Names the generated module itself uses.
RESERVED = frozenset({"self", "x", "torch", "nn", "F", "in_channels", "outputs", "target"})

# Public attributes of the network module netc builds (runtime and generated):
# a layer of that name would collide with them.
NETWORK_ATTRIBUTES = frozenset(
    {"aux_weights", "loss", "from_training_checkpoint", "load_training_checkpoint"}
)

# Module-level names of generated source (compiler/backends/source/): no
# block or network class may take one.
MODULE_NAMES = frozenset({"NamedTuple", "AUX_LOSS_WEIGHTS", "AUX_HEADS", "loss"})

_BUILTINS = frozenset(dir(builtins))

Role = Literal["block", "network", "parameter", "layer"]


def check_identifier(name: str, span: Span | None, role: Role) -> str:
    problem = _problem(name, role)
    if problem:
        raise SpecError(f"{role} name '{name}' {problem}", span, hint="choose another name")
    return name


def _problem(name: str, role: Role) -> str | None:
    if not _IDENTIFIER.match(name):
        return "must start with a letter and use only ASCII letters, digits and '_'"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        return "is a Python keyword"
    if name in _BUILTINS:
        return "would shadow a Python builtin"
    if name in RESERVED:
        return "is reserved by netc's generated code"
    if role == "layer" and name in MODULE_ATTRIBUTES:
        return "would shadow an nn.Module attribute"
    if role == "layer" and name in NETWORK_ATTRIBUTES:
        return "would shadow an attribute of the network module"
    if role in ("block", "network") and name in MODULE_NAMES:
        return "is reserved by netc's generated code"
    return None


class Namespace:
    """Unique local names for generated code, fresh per function (cf. torch.fx)."""

    def __init__(self, taken: set[str] | None = None):
        self._taken = set(taken or ())

    def create(self, candidate: str) -> str:
        base = (
            candidate if _IDENTIFIER.match(candidate) and not _problem(candidate, "layer") else "v"
        )
        name, n = base, 1
        while name in self._taken:
            name, n = f"{base}_{n}", n + 1
        self._taken.add(name)
        return name
