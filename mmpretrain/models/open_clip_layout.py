"""Key renames between our CLIP state dict and open_clip's plain ``CLIP`` layout.

Ours (= open_clip ``CustomTextCLIP``) keeps the text tower under ``text.``; open_clip's plain
``CLIP`` (used for every ViT-*/RN* json config without ``custom_text``) flattens the text
tower's attributes to the top level. Values are passed through untouched. A CoCa state dict
(``text_decoder.*`` keys) already is open_clip's ``CoCa`` layout, which keeps ``text.``.
"""

from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")

TEXT_PREFIX = "text."
# Top-level names of open_clip's plain CLIP that belong to the text tower.
_OPEN_CLIP_TEXT_ROOTS = ("transformer", "token_embedding", "positional_embedding", "ln_final",
                         "text_projection")
_SHARED_ROOTS = ("visual", "logit_scale", "logit_bias", "text_decoder")


def _root(key: str) -> str:
    return key.split(".", 1)[0]


def to_open_clip_state_dict(state_dict: Mapping[str, V], custom_text: bool = False
                            ) -> dict[str, V]:
    """Our layout -> open_clip plain ``CLIP`` layout (``text.x`` becomes ``x``); a CoCa dict,
    or any with ``custom_text`` (open_clip's ``CustomTextCLIP``), keeps the ``text.`` prefix."""
    is_coca = custom_text or any(_root(key) == "text_decoder" for key in state_dict)
    converted: dict[str, V] = {}
    for key, value in state_dict.items():
        if key.startswith(TEXT_PREFIX):
            converted[key if is_coca else key[len(TEXT_PREFIX):]] = value
        elif _root(key) in _SHARED_ROOTS:
            converted[key] = value
        else:
            raise ValueError(f"state dict key {key!r} is not part of mmpretrain's CLIP layout "
                             f"(expected a prefix of {_SHARED_ROOTS + ('text',)})")
    return converted


def from_open_clip_state_dict(state_dict: Mapping[str, V]) -> dict[str, V]:
    """open_clip plain ``CLIP`` layout -> our layout; a ``CustomTextCLIP`` dict passes as is."""
    converted: dict[str, V] = {}
    for key, value in state_dict.items():
        root = _root(key)
        if root in _OPEN_CLIP_TEXT_ROOTS:
            converted[TEXT_PREFIX + key] = value
        elif root in _SHARED_ROOTS or key.startswith(TEXT_PREFIX):
            converted[key] = value
        else:
            raise ValueError(f"open_clip state dict key {key!r} is not a CLIP key (expected a "
                             f"prefix of {_SHARED_ROOTS + _OPEN_CLIP_TEXT_ROOTS + ('text',)})")
    return converted
