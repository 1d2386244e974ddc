"""The researcher's workflow around runs: reading run directories, report plots and tables,
ablation sweeps, and the inference / data-viewing helpers the notebooks call."""
