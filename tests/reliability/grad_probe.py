"""Gradient probe: one training backward per experiment config on CPU, listing the trainable
parameters that get no gradient (``grad is None``). DDP with ``find_unused_parameters:
false`` (configs/trainer/ddp.yaml) fails on any such parameter, so the list must be empty.

    python tests/reliability/grad_probe.py            # every configs/exp/** config
    python tests/reliability/grad_probe.py interleaved  # configs whose path contains a word

The test (tests/reliability/test_grad_probe.py) runs it on the interleaved ablations.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import lightning as L

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))

from mmpretrain.cli import run_lightning_cli  # noqa: E402


# one training step, no validation, checkpoint, logger or progress bar
ONE_STEP = ["--trainer.max_steps=1", "--trainer.limit_val_batches=0", "--trainer.callbacks=[]",
            "--trainer.enable_checkpointing=false", "--trainer.logger=false",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


class UnusedParameterProbe(L.Callback):
    """Over the backward passes of the first training step (one, or one per micro-batch with
    manual optimization, e.g. gradient caching), the names of trainable parameters that
    never had a gradient."""

    def __init__(self) -> None:
        self.unused: list[str] | None = None
        self._with_grad: set[str] = set()

    def on_after_backward(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.unused is None:
            self._with_grad |= {name for name, p in pl_module.named_parameters() if p.grad is not None}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        if self.unused is None:
            self.unused = [name for name, p in pl_module.named_parameters()
                           if p.requires_grad and name not in self._with_grad]


def unused_parameters(config_args: list[str], run_dir: Path) -> list[str]:
    """Trainable parameters without gradient after one CPU training step of a config stack
    (``-c ... --key=value`` arguments as the CLI takes them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = run_lightning_cli(["-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"), *config_args,
                                 *ONE_STEP, f"--trainer.default_root_dir={run_dir}"], run=False)
        probe = UnusedParameterProbe()
        cli.trainer.callbacks.append(probe)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    if probe.unused is None:
        raise RuntimeError(f"no backward ran for {config_args}")
    return probe.unused


def _experiment_stacks(word: str) -> list[list[str]]:
    exp = REPO_ROOT / "configs" / "exp"
    stacks = []
    for path in sorted(exp.rglob("*.yaml")):
        if word not in str(path):
            continue
        if path.parent.name == "ablations":
            stacks.append([str(path.parents[1] / "quickstart.yaml"), str(path)])
        else:
            stacks.append([str(path)])
    return stacks


def main(argv: list[str]) -> int:
    """Probe every experiment config with the test suite's synthetic data (tests/test_configs.py
    decides which shards and overrides each family gets)."""
    import pytest  # the per-family data lives in the test fixtures

    word = argv[0] if argv else ""
    stacks = _experiment_stacks(word)
    plugin = _ProbeAll(stacks)
    code = pytest.main(["-q", "-p", "no:cacheprovider", "-s", str(Path(__file__)), "-k", "probe_all"],
                       plugins=[plugin])
    for stack, unused in plugin.results:
        label = " + ".join(str(Path(p).relative_to(REPO_ROOT)) for p in stack)
        print(f"{label}: {'ok' if not unused else 'NO GRAD: ' + ', '.join(unused)}")
    return int(code) or int(any(unused for _, unused in plugin.results))


class _ProbeAll:
    def __init__(self, stacks: list[list[str]]) -> None:
        self.stacks, self.results = stacks, []

    def pytest_generate_tests(self, metafunc) -> None:
        if "probe_stack" in metafunc.fixturenames:
            metafunc.parametrize("probe_stack", self.stacks, ids=[s[-1] for s in self.stacks])

    def pytest_configure(self, config) -> None:
        config.probe_results = self.results


def test_probe_all(probe_stack, request, tmp_path):
    from tests.test_configs import _family_data

    unused = unused_parameters([a for p in probe_stack for a in ("-c", p)]
                               + _family_data(str(Path(probe_stack[0]).relative_to(REPO_ROOT)), request),
                               tmp_path)
    request.config.probe_results.append((probe_stack, unused))
    label = " + ".join(str(Path(p).relative_to(REPO_ROOT)) for p in probe_stack)
    print(f"\nPROBE {label}: {'ok' if not unused else 'NO GRAD: ' + ', '.join(unused)}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
