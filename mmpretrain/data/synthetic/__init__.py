"""Procedurally generated datasets for tests, quickstarts and ablations.

One module per kind of data (`image_text`, later `video_text`, `trajectory`, `interleaved`),
each exposing `SUBCOMMAND`, `DESCRIPTION`, a frozen options dataclass (its fields become the
`data_tools/make_synthetic.py` flags) and a `generate_*(out_dir, options, overwrite,
on_sample) -> spec` function. Shared scene drawing lives in `shapes` and `captions`.
"""
