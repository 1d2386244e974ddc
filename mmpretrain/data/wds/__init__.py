"""WebDataset shards: spec parsing, tolerant tar reading, the resumable `ShardStream`."""
