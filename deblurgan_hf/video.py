"""Deblur a video clip: frames are decoded and encoded with PyAV (FFmpeg's libraries), streamed in
small batches through the model, so memory does not grow with the clip's length.

Kept from the input: frame rate and timestamps, size, the rotation (display matrix) and the audio
stream, whose packets are copied unchanged. Video goes out as H.264 (x264, CRF 18 by default), or
lossless RGB H.264 with `lossless=True`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._extras import needs
from .files import atomic_write
from .imaging import to_uint8

with needs("video"):
    import av
    from av.video.reformatter import Interpolation

# Inputs the CLI treats as video (anything FFmpeg reads works; these decide image vs video mode).
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm")
# Outputs: containers that hold H.264 and the common audio codecs, by suffix.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
DEFAULT_CRF = 18  # x264's "visually lossless" end of the scale (0 is lossless, 51 the worst)
DEFAULT_BATCH = 4
# swscale's default YUV -> RGB (chroma not interpolated, fast rounding) darkens 4:2:0 frames by about
# 1.1 levels each way (measured on the GoPro frames: mean RGB difference after a round trip -1.1,
# -1.4, -1.1; with these flags +0.02, +0.01, -0.04).
TO_RGB = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
TO_YUV = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` reads from a clip's headers and its first frame."""

    path: Path
    width: int
    height: int
    rate: Fraction  # frames per second (average)
    seconds: float
    frames: int  # from the header, or seconds x rate where the container does not say
    codec: str
    rotation: int  # degrees counter-clockwise a player turns the frames (display matrix)
    audio: str | None  # audio codec, None without audio
    display_matrix: tuple[int, ...] | None  # the rotation (and flips) as FFmpeg stores it


def _open_input(path: Path) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as err:
        raise ValueError(f"{path}: not a video file FFmpeg can read (MP4, MOV, MKV, AVI, WebM, ...): "
                         f"{err.strerror or err}") from None
    if container.format.name.endswith("_pipe") or container.format.name == "image2":
        container.close()
        raise ValueError(f"{path}: a still image, not a video (deblur it as a photo)")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        container.close()
        raise ValueError(f"{path}: no video stream in it (it holds {', '.join(kinds)})")
    if container.streams.video[0].codec_context is None:
        container.close()
        raise ValueError(f"{path}: its video codec is not one this FFmpeg build decodes "
                         "(H.264, HEVC, VP8/9, AV1, MPEG-4, ProRes, ... are)")
    return container


def _display_matrix(frame: Any) -> tuple[int, ...] | None:
    for side_data in frame.side_data:
        if side_data.type.name == "DISPLAYMATRIX":
            return tuple(np.frombuffer(bytes(side_data), dtype=np.int32).tolist())
    return None


def probe(path: str | os.PathLike, max_pixels: int | None = None) -> VideoInfo:
    """Read a clip's size, rate, length, codec, rotation and audio; decodes the first frame, so a
    clip that cannot be decoded is refused here. Raises FileNotFoundError or ValueError naming it.

    max_pixels: refuse frames larger than this by the header, before any frame is decoded.
    """
    path = Path(path)
    with _open_input(path) as container:
        stream = container.streams.video[0]
        if max_pixels is not None and stream.width * stream.height > max_pixels:
            raise ValueError(f"{path}: its frames are {stream.width}x{stream.height} = "
                             f"{stream.width * stream.height / 1e6:.2f} megapixels; at most {max_pixels / 1e6:g} are allowed")
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        if stream.duration is not None:
            seconds = float(stream.duration * stream.time_base)
        else:
            seconds = (container.duration or 0) / av.time_base
        frames = stream.frames or round(seconds * rate)
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as err:
            raise ValueError(f"{path}: its video stream ({stream.codec_context.name}) cannot be decoded: "
                             f"{err.strerror or err}") from None
        if first is None:
            raise ValueError(f"{path}: its video stream holds no frames")
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(path, first.width, first.height, rate, seconds, frames, stream.codec_context.name,
                         first.rotation, audio, _display_matrix(first))


def check_window(info: VideoInfo, start: float, duration: float | None) -> None:
    """Refuse a start or duration outside the clip, naming the file and the allowed range."""
    if not (math.isfinite(start) and 0 <= start < info.seconds):
        raise ValueError(f"{info.path}: --start {start:g} is outside the clip; allowed: 0 <= --start < "
                         f"{info.seconds:.2f} (its length in seconds)")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"{info.path}: --duration {duration:g}: must be a number of seconds above 0")


def check_output(path: Path) -> str:
    """The container format for output `path` (by its suffix); ValueError if there is none."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise ValueError(f"-o {path}: a video goes into a file ending in {', '.join(OUTPUT_FORMATS)} "
                         f"({suffix + ' is not one' if suffix else 'not a folder'})")
    return OUTPUT_FORMATS[suffix]


def _add_video_stream(out: Any, info: VideoInfo, template: Any, lossless: bool, crf: int) -> Any:
    # libx264rgb at QP 0 stores the model's RGB output exactly; yuv420p (what every player
    # plays) needs even sizes, so odd-sized clips go out as 4:4:4.
    if lossless:
        stream = out.add_stream("libx264rgb", rate=info.rate, options={"qp": "0", "preset": "medium"})
        stream.pix_fmt = "rgb24"
    else:
        stream = out.add_stream("libx264", rate=info.rate, options={"crf": str(crf), "preset": "medium"})
        stream.pix_fmt = "yuv420p" if info.width % 2 == 0 and info.height % 2 == 0 else "yuv444p"
    stream.width, stream.height = info.width, info.height
    if not lossless:  # the input's colour tags (BT.709, full range, ...): to_yuv converts by them
        for tag in ("colorspace", "color_range", "color_primaries", "color_trc"):
            setattr(stream.codec_context, tag, getattr(template.codec_context, tag))
    stream.time_base = template.time_base  # the input's timestamps go out unchanged (variable rate too)
    stream.codec_context.time_base = template.time_base
    if info.display_matrix is not None:
        stream.set_display_matrix(list(info.display_matrix))
    return stream


def _to_stream_format(rgb: Any, stream: Any) -> Any:
    """An RGB frame in the encoder's pixel format, by the stream's colour matrix and range.

    Decoding converts to RGB by the input frame's own tags; converting back by the same ones (the
    output carries them) keeps the colours. Untagged clips use FFmpeg's default (BT.601) both ways."""
    if stream.pix_fmt == "rgb24":
        return rgb
    context = stream.codec_context
    return rgb.reformat(format=stream.pix_fmt, dst_colorspace=context.colorspace or None,
                        dst_color_range=context.color_range or None, interpolation=TO_YUV)


def deblur_video(
    deblur: Callable[[torch.Tensor], torch.Tensor],
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    start: float = 0.0,
    duration: float | None = None,
    lossless: bool = False,
    crf: int = DEFAULT_CRF,
    batch_size: int = DEFAULT_BATCH,
    max_frames: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Deblur the clip `src` (from `start` seconds, `duration` long or to the end) into `dst`.

    `deblur` maps a float (N, 3, H, W) batch in [0, 1] to the same (for example
    `lambda x: model.deblur(x, precision="auto")`). At most `batch_size` decoded frames wait for
    the model. `dst` (.mp4, .mov or .mkv) is written under a temporary name and renamed at the end.
    `progress(done, expected)` is called after each batch. Returns the number of frames written;
    ValueError (naming the file) for anything wrong with the input, or over `max_frames` frames.
    """
    src, dst = Path(src), Path(dst)
    out_format = check_output(dst)
    info = probe(src)
    check_window(info, start, duration)
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size}: must be at least 1")
    expected = info.frames if duration is None else round(duration * info.rate)
    expected = max(1, min(expected, info.frames - round(start * info.rate)))
    with _open_input(src) as inp, atomic_write(dst) as tmp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"  # frame-threaded decoding
        ain = inp.streams.audio[0] if inp.streams.audio else None
        # Times on the container's clock; with a start, both streams are shifted to begin at 0.
        # Fractions, not floats: a frame at exactly start + duration is past the end.
        origin = (vin.start_time or 0) * vin.time_base + Fraction(start).limit_denominator(10**6)
        length = math.inf if duration is None else Fraction(duration).limit_denominator(10**6)
        window = (origin if start else -math.inf, origin + length)
        shift = origin if start else Fraction(0)
        if start:
            inp.seek(round(origin / vin.time_base), stream=vin, backward=True)  # the keyframe before
        options = {"movflags": "+faststart"} if out_format in ("mp4", "mov") else {}
        with av.open(str(tmp), "w", format=out_format, options=options) as out:
            vout = _add_video_stream(out, info, vin, lossless, crf)
            try:
                aout = out.add_stream_from_template(ain) if ain is not None else None
                out.start_encoding()
            except (ValueError, av.error.FFmpegError) as err:  # ValueError: "'mp4' format does not support ..."
                raise ValueError(f"-o {dst}: the sound of {src} ({info.audio}) cannot be copied into a {dst.suffix} "
                                 f"file ({getattr(err, 'strerror', None) or err}); try another of "
                                 f"{', '.join(OUTPUT_FORMATS)}") from None
            done, pending = 0, []

            def encode(frames: list[Any]) -> None:
                if any((f.width, f.height) != (info.width, info.height) for f in frames):
                    raise ValueError(f"{src}: the frame size changes after frame {done - len(frames)} "
                                     f"(from {info.width}x{info.height}); clips that change size are not supported")
                rgb = np.stack([f.to_ndarray(format="rgb24", interpolation=TO_RGB) for f in frames])
                sharp = to_uint8(deblur(torch.from_numpy(rgb).permute(0, 3, 1, 2).float().div_(255)))
                for frame, pixels in zip(frames, sharp.permute(0, 2, 3, 1).cpu().numpy()):
                    new = _to_stream_format(av.VideoFrame.from_ndarray(pixels, format="rgb24"), vout)
                    new.pts, new.time_base = frame.pts - round(shift / vin.time_base), vin.time_base
                    out.mux(vout.encode(new))
                if progress is not None:
                    progress(done, max(done, expected))

            for item in _read_window(inp, vin, ain, window, src):
                if isinstance(item, av.Packet):  # audio: copied as it is, only shifted in time
                    shift_a = round(shift / ain.time_base)
                    if item.pts is not None:
                        item.pts -= shift_a
                    if item.dts is not None:
                        item.dts -= shift_a
                    item.stream = aout
                    out.mux(item)
                    continue
                pending.append(item)
                if max_frames is not None and done + len(pending) > max_frames:
                    raise ValueError(f"{src}: more than {max_frames} frames; at most {max_frames} are allowed")
                if len(pending) == batch_size:
                    done += len(pending)
                    encode(pending)
                    pending = []
            if pending:
                done += len(pending)
                encode(pending)
            if done == 0:
                raise ValueError(f"{src}: no video frames from --start {start:g} s on")
            out.mux(vout.encode(None))
    return done


def _read_window(inp: Any, vin: Any, ain: Any, window: tuple[float, float], src: Path) -> Iterator[Any]:
    """Decoded video frames, and audio packets undecoded, whose times fall in `window` (seconds).

    Reads on until both streams are past the end: the demuxer interleaves by time, so audio
    packets from before the end can follow the first video frame after it."""
    low, high = window
    half_frame = 0.5 / float(vin.average_rate or 30)
    video_done, audio_done = False, ain is None
    try:
        for packet in inp.demux(*[s for s in (vin, ain) if s is not None]):
            if packet.size == 0:
                continue  # the demuxer's end-of-stream marker (some containers leave dts unset on real packets)
            if packet.stream is ain:
                t = packet.pts * ain.time_base if packet.pts is not None else low
                audio_done = t >= high
                if low <= t < high:
                    yield packet
            elif not video_done:
                for frame in packet.decode():
                    t = frame.pts * vin.time_base
                    video_done = t >= high
                    if video_done:
                        break
                    if t >= low - half_frame:  # frames before it were decoded from the seek's keyframe on
                        yield frame
            if video_done and audio_done:
                return
        if not video_done:
            for frame in vin.decode(None):  # the frames the decoder still holds
                if frame.pts * vin.time_base < high:
                    yield frame
    except av.error.FFmpegError as err:
        raise ValueError(f"{src}: damaged video data ({err.strerror or err})") from None
