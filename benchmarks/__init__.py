"""Side-by-side speed benchmarks of mmpretrain against open_clip's trainer (`open_clip_train`).

Run all suites with `make bench` or `python benchmarks/run.py --out benchmarks/results`.
"""
