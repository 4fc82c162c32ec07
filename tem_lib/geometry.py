"""Ellipse geometry shared by the simulator, the ImageJ reader and the mask priors.

Coordinate convention used everywhere in tem_lib (the ImageJ one): continuous image
coordinates with x to the right and y down; pixel (row r, col c) covers [c, c+1) x [r, r+1),
so its centre is (c + 0.5, r + 0.5). Angles are in degrees, counter-clockwise from +x as seen
on screen: the major axis points along (dx, dy) = (cos a, -sin a).
"""
from __future__ import annotations

import numpy as np


def ellipse_bbox(cx, cy, major, minor, angle_deg):
    """Tight axis-aligned bounds (x0, y0, x1, y1), continuous coordinates, of an ellipse."""
    a, b, t = major / 2.0, minor / 2.0, np.deg2rad(angle_deg)
    hw = np.sqrt((a * np.cos(t)) ** 2 + (b * np.sin(t)) ** 2)
    hh = np.sqrt((a * np.sin(t)) ** 2 + (b * np.cos(t)) ** 2)
    return cx - hw, cy - hh, cx + hw, cy + hh


def bar_bbox(cx, cy, length, width, angle_deg):
    """Tight axis-aligned bounds (x0, y0, x1, y1) of a rotated rectangle."""
    a, b, t = length / 2.0, width / 2.0, np.deg2rad(angle_deg)
    hw = a * abs(np.cos(t)) + b * abs(np.sin(t))
    hh = a * abs(np.sin(t)) + b * abs(np.cos(t))
    return cx - hw, cy - hh, cx + hw, cy + hh


def _window_uv(bounds, cx, cy, angle_deg, shape, pad: float):
    """Pixel window covering ``bounds`` (+ pad) and the pixel centres' coordinates (u, v)
    along the major axis (cos a, -sin a) and the minor axis (sin a, cos a)."""
    H, W = shape
    bx0, by0, bx1, by1 = bounds
    x0, y0 = max(int(np.floor(bx0 - pad)), 0), max(int(np.floor(by0 - pad)), 0)
    x1, y1 = min(int(np.ceil(bx1 + pad)), W), min(int(np.ceil(by1 + pad)), H)
    if x1 <= x0 or y1 <= y0:
        return None
    xs = np.arange(x0, x1, dtype=np.float32) + 0.5 - cx
    ys = np.arange(y0, y1, dtype=np.float32) + 0.5 - cy
    t = np.deg2rad(angle_deg)
    c, s = np.float32(np.cos(t)), np.float32(np.sin(t))
    return x0, y0, xs[None, :] * c - ys[:, None] * s, xs[None, :] * s + ys[:, None] * c


def ellipse_frame(cx, cy, major, minor, angle_deg, shape, pad: float = 0.0):
    """Pixel window around an ellipse and its normalised radius there.

    Returns ``(x0, y0, r, phi)``: ``r`` [h, w] float32 is the normalised elliptical radius
    (r <= 1 inside) and ``phi`` the parametric angle around the ellipse (radians), or
    ``None`` if the window misses the image.
    ``pad`` widens the window by that many pixels (for rims drawn outside the mask).
    """
    win = _window_uv(ellipse_bbox(cx, cy, major, minor, angle_deg), cx, cy, angle_deg, shape, pad)
    if win is None:
        return None
    x0, y0, u, v = win
    a, b = max(major / 2.0, 1e-3), max(minor / 2.0, 1e-3)
    r = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    return x0, y0, r, np.arctan2(v / b, u / a)


def rasterize_ellipse(cx, cy, major, minor, angle_deg, shape):
    """Filled ellipse as ``(mask, x0, y0)``: bool mask of the pixels whose centres lie
    inside, cropped to its bounding window at (x0, y0); ``None`` if no pixel is inside.
    An ellipse thinner than a pixel still covers the pixels its centre line crosses."""
    major, minor = max(major, 1.0), max(minor, 1.0)
    win = _window_uv(ellipse_bbox(cx, cy, major, minor, angle_deg), cx, cy, angle_deg, shape, 0.0)
    if win is None:
        return None
    x0, y0, u, v = win
    return _trim((u * (2.0 / major)) ** 2 + (v * (2.0 / minor)) ** 2 <= 1.0, x0, y0)


def rasterize_bar(cx, cy, length, width, angle_deg, shape):
    """Filled rotated rectangle (an edge-on loop drawn as a thin bar), as
    :func:`rasterize_ellipse`: ``(mask, x0, y0)`` or ``None``."""
    length, width = max(length, 1.0), max(width, 1.0)
    win = _window_uv(bar_bbox(cx, cy, length, width, angle_deg), cx, cy, angle_deg, shape, 0.0)
    if win is None:
        return None
    x0, y0, u, v = win
    return _trim((np.abs(u) <= length / 2.0) & (np.abs(v) <= width / 2.0), x0, y0)


def _trim(mask, x0, y0):
    rows = np.flatnonzero(mask.any(1))
    if not len(rows):
        return None
    cols = np.flatnonzero(mask.any(0))
    r0, c0 = rows[0], cols[0]
    return mask[r0:rows[-1] + 1, c0:cols[-1] + 1], x0 + int(c0), y0 + int(r0)
