"""Video (issue 15): `deblurgan deblur clip.mp4 -o sharp.mp4` and the app's Video tab, on a clip made
from the 20 consecutive real GoPro frames with a sound track, a rotation tag and a 30 fps rate."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from app_server import GOPRO_BLUR, app_models_env, bundled_model_exists, gradient_energy, serve_app

av = pytest.importorskip("av", reason="PyAV (the [video] extra) is not installed")

from deblurgan_hf.video import TO_RGB, TO_YUV, deblur_video, probe  # noqa: E402

pytestmark = pytest.mark.skipif(not GOPRO_BLUR.is_dir(), reason=f"{GOPRO_BLUR} missing (../shared/data)")

DEBLURGAN = str(Path(sys.executable).with_name("deblurgan"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
SIZE = (384, 256)  # a crop of each 1280x720 frame at full resolution: the camera's own blur, small and quick
SAMPLE_RATE = 48000


def make_clip(path: Path, frames: int = 20, rotation: int | None = 90, audio: bool = True, fps: int = 30,
              size: tuple[int, int] = SIZE, bt709: bool = False) -> Path:
    """An H.264 clip of the real blurred frames (repeated when `frames` > 20) with a 440 Hz AAC tone;
    `bt709`: converted and tagged as BT.709 limited range (HD cameras), else untagged (BT.601)."""
    files = sorted(GOPRO_BLUR.glob("*.png"))
    w, h = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "10"})
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        if rotation is not None:
            video.set_display_rotation(rotation)
        if bt709:
            video.codec_context.colorspace, video.codec_context.color_range = 1, 1  # AVCOL_SPC_BT709, MPEG range
        sound = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono") if audio else None
        for i in range(frames):
            with Image.open(files[i % len(files)]) as img:
                rgb = np.asarray(img.convert("RGB").crop((300, 250, 300 + w, 250 + h)))
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if bt709:
                frame = frame.reformat(format="yuv420p", dst_colorspace=1, dst_color_range=1, interpolation=TO_YUV)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound is not None:
            samples = SAMPLE_RATE * frames // fps
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
            for start in range(0, samples, 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, start:start + 1024], format="flt", layout="mono")
                frame.sample_rate, frame.pts = SAMPLE_RATE, start
                out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def decoded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as clip:
        return [f.to_ndarray(format="rgb24", interpolation=TO_RGB) for f in clip.decode(video=0)]


def audio_packets(path: Path) -> list[tuple[int, bytes]]:
    """(pts, payload) of every audio packet, in order."""
    with av.open(str(path)) as clip:
        return [(p.pts, bytes(p)) for p in clip.demux(audio=0) if p.size]


def audio_seconds(path: Path) -> float:
    with av.open(str(path)) as clip:
        stream = clip.streams.audio[0]
        return sum(p.duration for p in clip.demux(stream) if p.size) * float(stream.time_base)


def energy(frames: list[np.ndarray]) -> float:
    return float(np.mean([gradient_energy(Image.fromarray(f)) for f in frames]))


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([DEBLURGAN, *args], capture_output=True, text=True, env=ENV, timeout=timeout)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "blurred.mp4")


def test_probe_reads_what_the_clip_holds(clip):
    info = probe(clip)
    assert (info.width, info.height, info.frames, info.rate, info.codec) == (*SIZE, 20, 30, "h264")
    assert info.rotation == 90 and info.audio == "aac"
    assert abs(info.seconds - 20 / 30) < 0.01


# ----------------------------------------------------------------------------- bad input


def _bad_files(tmp_path: Path, clip: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "notes.mp4"
    text.write_text("my holiday notes, not a video\n" * 50)
    still = tmp_path / "photo.mp4"  # a PNG under a video's name
    with Image.open(sorted(GOPRO_BLUR.glob("*.png"))[0]) as img:
        img.crop((0, 0, 64, 64)).save(still, format="PNG")
    sound_only = tmp_path / "tone.m4a"
    with av.open(str(clip)) as src, av.open(str(sound_only), "w", format="mp4") as out:
        stream = out.add_stream_from_template(src.streams.audio[0])
        for packet in src.demux(audio=0):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    # An AVI whose video codec tag no decoder knows (an MPEG-4 AVI with its tags overwritten).
    unknown = tmp_path / "unknown-codec.avi"
    with av.open(str(unknown), "w") as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(3):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        out.mux(stream.encode(None))
    data = unknown.read_bytes()
    assert b"FMP4" in data
    unknown.write_bytes(data.replace(b"FMP4", b"QQQQ"))
    return {
        "not a video": (text, "notes.mp4: not a video file FFmpeg can read"),
        "still image": (still, "photo.mp4: a still image, not a video"),
        "no video stream": (sound_only, "tone.m4a: no video stream in it (it holds audio)"),
        "unsupported codec": (unknown, "unknown-codec.avi: its video codec is not one this FFmpeg build decodes"),
    }


def test_bad_files_are_one_line_usage_errors_naming_the_file(clip, tmp_path):
    for case, (path, expected) in _bad_files(tmp_path, clip).items():
        # The model folder does not exist: the file is refused first, before anything loads.
        proc = run("deblur", str(path), "-o", str(tmp_path / "out.mp4"), "--model", str(tmp_path / "no-model"))
        print(case, proc.stderr)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, case
        assert expected in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, case
        assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("options, expected", [
    (["--start", "5"], "blurred.mp4: --start 5 is outside the clip; allowed: 0 <= --start < 0.67"),
    (["--start", "-1"], "--start -1 is outside the clip"),
    (["--start", "nan"], "--start nan is outside the clip"),
    (["--duration", "0"], "blurred.mp4: --duration 0: must be a number of seconds above 0"),
    (["--start", "abc"], "argument --start: invalid float value: 'abc'"),
    (["--crf", "60"], "--crf 60: allowed values are 0 (lossless) to 51 (worst)"),
    (["-o", "sharp.webm"], "a video goes into a file ending in .mp4, .m4v, .mov, .mkv (.webm is not one)"),
    (["-o", "sharp"], "a video goes into a file ending in .mp4, .m4v, .mov, .mkv (not a folder)"),
])
def test_bad_video_options_are_usage_errors_before_the_model_loads(clip, tmp_path, options, expected):
    output = ["-o", str(tmp_path / "sharp.mp4")] if "-o" not in options else []
    fixed = [str(tmp_path / o) if o.startswith("sharp") else o for o in options]
    proc = run("deblur", str(clip), *output, *fixed, "--model", str(tmp_path / "no-model"))
    print(proc.stderr)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert expected in lines[-1]  # argparse's own errors come after its usage lines, like every flag's
    assert len(lines) == 1 or lines[0].startswith("usage:")


def test_video_options_on_images_are_refused(tmp_path):
    image = tmp_path / "in.png"
    with Image.open(sorted(GOPRO_BLUR.glob("*.png"))[0]) as img:
        img.crop((0, 0, 48, 32)).save(image)
    proc = run("deblur", str(image), "-o", str(tmp_path / "out"), "--start", "1")
    assert proc.returncode == 2 and "--start: for a video input only" in proc.stderr


# ----------------------------------------------------------------------------- the CLI on a real clip


def test_cli_keeps_frames_rate_size_rotation_and_audio_and_sharpens(clip, tmp_path):
    out = tmp_path / "sharp.mp4"
    proc = run("deblur", str(clip), "-o", str(out))
    print(proc.stdout, proc.stderr[-500:])
    assert proc.returncode == 0, proc.stderr
    assert "20 frames deblurred into" in proc.stdout and "20/20" in proc.stderr  # the progress bar counts frames
    before, after = probe(clip), probe(out)
    assert (after.width, after.height, after.frames, after.rate) == (before.width, before.height, 20, 30)
    assert after.rotation == 90 and after.codec == "h264"
    assert audio_packets(out) == audio_packets(clip)  # copied packet for packet, not re-encoded
    assert abs(audio_seconds(out) - audio_seconds(clip)) < 1e-9
    assert [p.name for p in tmp_path.iterdir()] == ["sharp.mp4"]  # no temp file left
    if bundled_model_exists():
        gain = energy(decoded_frames(out)) / energy(decoded_frames(clip))
        print(f"gradient energy output / input: {gain:.2f}")
        assert gain > 1.1


def test_start_and_duration_cut_video_and_audio_alike(clip, tmp_path):
    out = tmp_path / "cut.mov"
    proc = run("deblur", str(clip), "-o", str(out), "--start", "0.2", "--duration", "0.3", "--batch", "3")
    assert proc.returncode == 0, proc.stderr
    info = probe(out)
    assert info.frames == 9 and info.rate == 30 and info.rotation == 90  # frames 6..14 of 0..19 at 30 fps
    with av.open(str(out)) as cut:
        first = next(cut.decode(video=0))
        assert abs(first.time) < 1e-3  # the cut starts at 0
    # AAC packets are 1024 samples (21 ms): the sound is cut to the packet.
    assert abs(audio_seconds(out) - 0.3) <= 1024 / SAMPLE_RATE + 1e-6


def test_lossless_output_holds_the_models_frames_exactly(clip, tmp_path, small_model):
    """With lossless=True, every output frame is the model's output for the decoded input frame."""
    out = tmp_path / "lossless.mkv"

    def deblur(batch: torch.Tensor) -> torch.Tensor:
        return small_model.deblur(batch, precision="fp32")

    assert deblur_video(deblur, clip, out, lossless=True, batch_size=3) == 20
    inputs, outputs = decoded_frames(clip), decoded_frames(out)
    assert len(outputs) == 20
    for i in (0, 7, 19):
        x = torch.from_numpy(inputs[i]).permute(2, 0, 1)[None].float() / 255
        expected = small_model.deblur(x, precision="fp32")[0].permute(1, 2, 0).numpy()
        assert np.array_equal(outputs[i], (np.clip(expected, 0, 1) * 255).round().astype(np.uint8)), i


@pytest.mark.parametrize("bt709", [False, True])
def test_colours_and_their_tags_survive_the_round_trip(tmp_path, bt709):
    """Through an identity 'model': no colour shift (swscale's defaults darken each 4:2:0 round trip
    by about a level), and BT.709 clips stay BT.709."""
    src = make_clip(tmp_path / "in.mp4", frames=4, audio=False, bt709=bt709)
    out = tmp_path / "out.mp4"
    deblur_video(lambda x: x, src, out, crf=10)
    before, after = np.stack(decoded_frames(src)).astype(float), np.stack(decoded_frames(out)).astype(float)
    shift = (after - before).mean(axis=(0, 1, 2))
    print(f"mean RGB shift {shift.round(2)}, mean absolute difference {np.abs(after - before).mean():.2f}")
    assert np.all(np.abs(shift) < 0.3) and np.abs(after - before).mean() < 1.0
    with av.open(str(src)) as a, av.open(str(out)) as b:
        tags = [(c.colorspace, c.color_range) for c in (a.streams.video[0].codec_context, b.streams.video[0].codec_context)]
    assert tags[0] == tags[1] == ((1, 1) if bt709 else (2, 0))


def test_a_failed_run_leaves_neither_output_nor_temp_file(clip, tmp_path, small_model):
    out = tmp_path / "sharp.mp4"
    with pytest.raises(ValueError, match="more than 10 frames"):
        deblur_video(lambda x: small_model.deblur(x), clip, out, max_frames=10)
    assert list(tmp_path.iterdir()) == []


def test_sound_the_output_container_cannot_hold_is_named(tmp_path):
    """8-bit PCM (old AVIs) goes into MKV but not MP4: a message, not a broken file."""
    src = tmp_path / "pcm_u8.mkv"
    with av.open(str(src), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sound = out.add_stream("pcm_u8", rate=8000, layout="mono")
        for _ in range(3):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        samples = av.AudioFrame.from_ndarray(np.full((1, 800), 128, np.uint8), format="u8", layout="mono")
        samples.sample_rate, samples.pts = 8000, 0
        out.mux(sound.encode(samples))
        out.mux(sound.encode(None))
    with pytest.raises(ValueError, match=r"pcm_u8.mkv \(pcm_u8\) cannot be copied into a \.mp4 file .*try another of"):
        deblur_video(lambda x: x, src, tmp_path / "out.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pcm_u8.mkv"]
    assert deblur_video(lambda x: x, src, tmp_path / "out.mkv") == 3
    assert probe(tmp_path / "out.mkv").audio == "pcm_u8"


def test_clip_without_rotation_or_sound(tmp_path, small_model):
    src = make_clip(tmp_path / "plain.mov", frames=5, rotation=None, audio=False)
    out = tmp_path / "plain-out.mov"
    assert deblur_video(lambda x: small_model.deblur(x), src, out) == 5
    info = probe(out)
    assert (info.frames, info.rotation, info.audio) == (5, 0, None)


# ----------------------------------------------------------------------------- the app


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("video-app")
    env = {**app_models_env(tmp), "DEBLURGAN_APP_MAX_VIDEO_FRAMES": "30", "DEBLURGAN_APP_MAX_VIDEO_SECONDS": "2",
           "DEBLURGAN_APP_MAX_VIDEO_MEGAPIXELS": "0.2", "DEBLURGAN_APP_MAX_FILE_SIZE": "2mb"}
    with serve_app(env, tmp / "app.log") as server:
        yield server


@pytest.fixture(scope="module")
def app_client(app_server):
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


def _deblur_clip(client, path: Path):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), api_name="/deblur_video")


@pytest.mark.slow
def test_app_video_tab_keeps_frames_rate_size_and_audio_and_sharpens(app_client, clip):
    result, download, summary = _deblur_clip(app_client, clip)
    print(summary)
    assert Path(result).name == "blurred_deblurred.mp4" and Path(download).read_bytes() == Path(result).read_bytes()
    info = probe(result)
    assert (info.width, info.height, info.frames, info.rate, info.rotation) == (*SIZE, 20, 30, 90)
    assert audio_packets(Path(result)) == audio_packets(clip)
    assert "**20 frames**" in summary and "aac sound copied unchanged" in summary
    if bundled_model_exists():
        assert energy(decoded_frames(Path(result))) / energy(decoded_frames(clip)) > 1.1


@pytest.mark.slow
def test_app_refuses_bad_and_over_limit_clips_with_their_message(app_client, clip, tmp_path):
    long_clip = make_clip(tmp_path / "long.mp4", frames=40)  # 1.33 s: under the seconds limit, over the frames'
    cases = {
        **{case: (path, message) for case, (path, message) in _bad_files(tmp_path, clip).items()},
        "too many frames": (long_clip, "The clip is 40 frames (at most 30)"),
        "frames too large": (make_clip(tmp_path / "wide.mp4", frames=2, size=(640, 360)),
                             "its frames are 640x360 = 0.23 megapixels; at most 0.2 are allowed"),
    }
    for case, (path, expected) in cases.items():
        with pytest.raises(Exception) as info:
            _deblur_clip(app_client, path)
        message = str(info.value)
        print(f"{case}: {message}")
        assert expected.split(": ", 1)[-1] in message, case
        assert str(tmp_path) not in message and "/tmp/gradio" not in message, "error leaks server paths"
    result, _, _ = _deblur_clip(app_client, clip)  # the next clip is served normally
    assert probe(result).frames == 20


@pytest.mark.browser
@pytest.mark.skipif(not Path("/usr/bin/chromium").is_file(), reason="Debian chromium not installed (make system-deps)")
def test_video_tab_in_a_browser_plays_the_result_and_downloads_it(app_server, clip, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True).new_page()
        page.goto(app_server.url)
        page.get_by_role("tab", name="Video").click()
        page.locator("#input-video input[type=file]").set_input_files(str(clip))
        page.wait_for_selector("#input-video video")
        page.click("#deblur-video-button")
        # The player has loaded the result far enough to know its size: the browser decodes it.
        page.wait_for_function("""() => {
            const v = document.querySelector('#result-video video');
            return v && v.readyState >= 1 && v.videoWidth > 0;
        }""", timeout=120_000)
        size = page.eval_on_selector("#result-video video", "v => [v.videoWidth, v.videoHeight]")
        print(f"the player shows {size[0]}x{size[1]}")
        assert size == [SIZE[1], SIZE[0]]  # 384x256 turned by the rotation tag the output kept
        assert "20 frames" in page.locator("#video-info").inner_text()
        with page.expect_download() as info:
            page.click("#download-video")
        assert info.value.suggested_filename == "blurred_deblurred.mp4"
        info.value.save_as(tmp_path / "download.mp4")
        assert probe(tmp_path / "download.mp4").frames == 20
        browser.close()
