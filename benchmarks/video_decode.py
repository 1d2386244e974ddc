"""Video decode benchmark: clips/s and frames/s decoding N frames per clip from MP4 bytes.

    python benchmarks/video_decode.py --clips 64 --frames-per-clip 8 --clip-frames 128

Compares PyAV decoding only the sampled frames (seeking across gaps, what the data layer
does) with PyAV decoding the whole clip and picking frames afterwards. torchcodec is
benchmarked as well when it imports (its wheels need the system ffmpeg shared libraries);
otherwise its entry says why it was skipped. Clips are synthetic (moving gradients), encoded
in memory with the data layer's short-GOP H.264 settings.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmpretrain.data.video.encode import encode_mp4  # noqa: E402
from mmpretrain.data.video.frame_sampling import uniform_indices  # noqa: E402
from mmpretrain.data.video.pyav_decoder import decode_frames  # noqa: E402


def make_clip(num_frames: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, size=(size, size, 3), dtype=np.uint8)
    return [np.roll(base, shift=t, axis=1) for t in range(num_frames)]


def _pyav_sampled(clip: bytes, frames_per_clip: int) -> int:
    return decode_frames(clip, lambda n, fps: uniform_indices(n, frames_per_clip)).frames_T3HW.shape[0]


def _pyav_full(clip: bytes, frames_per_clip: int) -> int:
    return decode_frames(clip, lambda n, fps: uniform_indices(n, frames_per_clip),
                         seek_gap=1 << 30).frames_T3HW.shape[0]


def _torchcodec_decoder():
    try:
        from torchcodec.decoders import VideoDecoder
    except Exception as exn:  # noqa: BLE001 - any import/load failure means "not available"
        return None, f"{type(exn).__name__}: {str(exn).splitlines()[0] if str(exn) else ''}"

    def decode(clip: bytes, frames_per_clip: int) -> int:
        decoder = VideoDecoder(clip, num_ffmpeg_threads=1)
        indices = uniform_indices(decoder.metadata.num_frames, frames_per_clip)
        return decoder.get_frames_at(indices).data.shape[0]

    return decode, None


def _time(decode, clips: list[bytes], frames_per_clip: int, repeats: int) -> dict:
    decode(clips[0], frames_per_clip)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        frames = sum(decode(clip, frames_per_clip) for clip in clips)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "clips_per_s": len(clips) / best, "frames_per_s": frames / best}


def run(clips: int = 32, frames_per_clip: int = 8, clip_frames: int = 128, size: int = 64,
        gop: int = 16, repeats: int = 3) -> dict:
    """Best-of-`repeats` decode throughput per method, plus the settings and machine."""
    encoded = [encode_mp4(make_clip(clip_frames, size, seed), fps=25, gop=gop) for seed in range(clips)]
    results = {"pyav_sampled": _time(_pyav_sampled, encoded, frames_per_clip, repeats),
               "pyav_full_clip": _time(_pyav_full, encoded, frames_per_clip, repeats)}
    torchcodec, reason = _torchcodec_decoder()
    results["torchcodec"] = (_time(torchcodec, encoded, frames_per_clip, repeats) if torchcodec
                             else {"skipped": reason})
    return {"settings": {"clips": clips, "frames_per_clip": frames_per_clip, "clip_frames": clip_frames,
                         "size": size, "gop": gop, "repeats": repeats},
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "results": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames-per-clip", type=int, default=8)
    parser.add_argument("--clip-frames", type=int, default=128, help="frames in each encoded clip")
    parser.add_argument("--size", type=int, default=64, help="frame side in pixels")
    parser.add_argument("--gop", type=int, default=16, help="keyframe interval")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.clips, args.frames_per_clip, args.clip_frames, args.size, args.gop,
                         args.repeats), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
