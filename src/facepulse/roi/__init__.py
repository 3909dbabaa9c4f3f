"""facepulse.roi: skin regions of interest (registry ``ROIS``) and RGB-trace extraction."""

from facepulse.roi.skin import ROIS, roi_polygons, skin_colour_filter, skin_mask, skin_mask_crop
from facepulse.roi.trace import FrameCallback, Trace, extract_trace, resample_uniform

__all__ = [
    "ROIS",
    "FrameCallback",
    "Trace",
    "extract_trace",
    "resample_uniform",
    "roi_polygons",
    "skin_colour_filter",
    "skin_mask",
    "skin_mask_crop",
]
