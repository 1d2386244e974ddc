"""Video towers built on the image ViT (initialisable from an image CLIP), and `VideoCLIP`."""

from mmpretrain.models.video.mean_pool import MeanPoolVideoEncoder
from mmpretrain.models.video.space_time import JointSpaceTimeVideoEncoder
from mmpretrain.models.video.token_rolling import TokenRollingVideoEncoder, roll_tokens
from mmpretrain.models.video.video_clip import VideoCLIP, load_image_clip_weights

__all__ = [
    "JointSpaceTimeVideoEncoder",
    "MeanPoolVideoEncoder",
    "TokenRollingVideoEncoder",
    "VideoCLIP",
    "load_image_clip_weights",
    "roll_tokens",
]
