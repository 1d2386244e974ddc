"""Data layer: shard streams (`wds`), per-modality sample schemas (`sources`), transforms,
tokenizer and the Lightning datamodule. Import from the submodules."""
