"""Generate synthetic WebDataset shards (deterministic per seed).

    python data_tools/make_synthetic.py image-text --out data/shapes --num-samples 5000

Same seed -> byte-identical shards.

Each subcommand is one module of `mmpretrain.data.synthetic`; its options dataclass fields
become the subcommand's flags, so adding a kind means adding its module to `KINDS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.progress import Progress  # noqa: E402

from mmpretrain.data.synthetic import continual_stream  # noqa: E402
from mmpretrain.data.synthetic import image_text  # noqa: E402
from mmpretrain.data.synthetic import interleaved  # noqa: E402
from mmpretrain.data.synthetic import trajectory  # noqa: E402
from mmpretrain.data.synthetic import video_text  # noqa: E402


@dataclasses.dataclass(frozen=True)
class SyntheticKind:
    subcommand: str
    description: str
    options_cls: type
    generate: typing.Callable[..., str]


KINDS: dict[str, SyntheticKind] = {
    kind.subcommand: kind
    for kind in (
        SyntheticKind(image_text.SUBCOMMAND, image_text.DESCRIPTION,
                      image_text.ImageTextOptions, image_text.generate_image_text),
        SyntheticKind(trajectory.SUBCOMMAND, trajectory.DESCRIPTION,
                      trajectory.TrajectoryOptions, trajectory.generate_trajectory),
        SyntheticKind(video_text.SUBCOMMAND, video_text.DESCRIPTION,
                      video_text.VideoTextOptions, video_text.generate_video_text),
        SyntheticKind(continual_stream.SUBCOMMAND, continual_stream.DESCRIPTION,
                      continual_stream.ContinualStreamOptions,
                      continual_stream.generate_continual_stream),
        SyntheticKind(interleaved.SUBCOMMAND, interleaved.DESCRIPTION,
                      interleaved.InterleavedOptions, interleaved.generate_interleaved),
    )
}


def add_option_flags(parser: argparse.ArgumentParser, options_cls: type) -> None:
    hints = typing.get_type_hints(options_cls)
    for option in dataclasses.fields(options_cls):
        flag = "--" + option.name.replace("_", "-")
        help_text = f"{option.metadata.get('help', '')} (default: {option.default})"
        if hints[option.name] is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction,
                                default=option.default, help=help_text)
        else:
            parser.add_argument(flag, type=hints[option.name], default=option.default,
                                help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in KINDS.values():
        sub = subparsers.add_parser(kind.subcommand, help=kind.description,
                                    description=kind.description)
        sub.add_argument("--out", required=True, help="output directory for the shards")
        sub.add_argument("--overwrite", action="store_true",
                         help="replace shards already in --out")
        sub.add_argument("--quiet", action="store_true", help="no progress bar")
        add_option_flags(sub, kind.options_cls)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    kind = KINDS[args.kind]
    option_names = [f.name for f in dataclasses.fields(kind.options_cls)]
    try:
        options = kind.options_cls(**{name: getattr(args, name) for name in option_names})
    except ValueError as error:
        parser.error(f"{args.kind}: {error}")
    console = Console(stderr=True)
    try:
        with Progress(console=console, transient=True, disable=args.quiet) as progress:
            task = progress.add_task(f"{args.kind} -> {args.out}", total=options.num_samples)
            spec = kind.generate(args.out, options, overwrite=args.overwrite,
                            on_sample=lambda: progress.advance(task))
    except FileExistsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {options.num_samples} samples: {spec}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
