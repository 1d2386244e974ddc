"""One sample schema per modality: raw tar sample -> decoded dict, plus its batch collate."""
