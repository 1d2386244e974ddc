"""open_clip's `tokenizer.py` (CLIP BPE, `SimpleTokenizer`) without importing open_clip.

`import open_clip.tokenizer` first runs `open_clip/__init__`, which builds the whole model zoo
(timm, Hugging Face, ~2 s at every start); the tokenizer file itself is self-contained (no
relative imports), so this module runs that one file as its own body. A real module (not an
anonymous one) so tokenizers pickle into DataLoader workers and spawned ranks.
"""

import importlib.util
import os

_package = importlib.util.find_spec("open_clip")
if _package is None or not _package.submodule_search_locations:
    raise ModuleNotFoundError("open_clip is not installed (pip install open_clip_torch)")
# `default_bpe()` reads the module's __file__: it finds the vocabulary bundled beside the file
__file__ = os.path.join(list(_package.submodule_search_locations)[0], "tokenizer.py")
with open(__file__, encoding="utf-8") as _source:
    exec(compile(_source.read(), __file__, "exec"))  # noqa: S102 - open_clip's own file, as import would
