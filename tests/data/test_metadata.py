import pytest

from mmpretrain.data.sampling.concepts import ConceptReader
from mmpretrain.data.sources.metadata import PARSED_KEY, sample_metadata
from mmpretrain.data.wds.skips import SkipSample


def test_parsed_once_and_shared_between_selection_and_decoder():
    raw = {"__key__": "a", "json": b'{"classes": ["red circle", "red circle"], "label": 3}'}
    assert ConceptReader()(raw) == ["red circle", "red circle"]
    cached = raw[PARSED_KEY]
    raw["json"] = b"not json any more"  # a second reader must not parse again
    assert sample_metadata(raw) is cached and cached["label"] == 3


def test_malformed_sidecar_is_skipped_by_decoders_but_empty_for_selection():
    raw = {"__key__": "b", "json": b"[1, 2]"}
    assert ConceptReader()(raw) == []
    with pytest.raises(SkipSample) as info:
        sample_metadata(raw)
    assert info.value.reason == "bad_json"
    assert sample_metadata({"__key__": "c"}) == {}
