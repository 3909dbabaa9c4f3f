"""facepulse.io: video input (files, image folders, arrays) as streaming frame sources."""

from facepulse.io.video import (
    ArraySource,
    FrameSource,
    ImageFolderSource,
    VideoFileSource,
    VideoInfo,
    open_video,
)

__all__ = [
    "ArraySource",
    "FrameSource",
    "ImageFolderSource",
    "VideoFileSource",
    "VideoInfo",
    "open_video",
]
