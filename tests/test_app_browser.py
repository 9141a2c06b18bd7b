"""The app in a real browser: Debian's Chromium driven by Playwright (issue 5).

Saves screenshots to test-artifacts/ (gitignored) for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from app_server import GOPRO_BLUR, ROOT, app_models_env, gopro_crop, serve_app

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]
SLIDER_IMAGES = "#result-slider img[data-testid=imageslider-image]"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="Debian chromium not installed (make system-deps)"),
    pytest.mark.skipif(not GOPRO_BLUR.is_dir(), reason=f"{GOPRO_BLUR} missing (../shared/data)"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-app")
    with serve_app(app_models_env(tmp), tmp / "app.log") as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(exist_ok=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector("#input-image")
    yield page
    context.close()


def _wait_for_two_slider_images(page, timeout_ms: int = 90_000) -> list[dict]:
    """Wait until both slider images are loaded and drawn; return their natural and shown sizes."""
    page.wait_for_function(
        f"""() => {{
            const imgs = [...document.querySelectorAll('{SLIDER_IMAGES}')];
            return imgs.length == 2 && imgs.every(i => i.complete && i.naturalWidth > 0);
        }}""",
        timeout=timeout_ms,
    )
    return page.eval_on_selector_all(
        SLIDER_IMAGES,
        "imgs => imgs.map(i => ({w: i.naturalWidth, h: i.naturalHeight, shownW: i.clientWidth, clip: i.style.clipPath}))",
    )


def _screenshot(page, name: str) -> Path:
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_upload_deblur_drag_and_download(page, tmp_path):
    sources = page.eval_on_selector_all("#input-image button", "bs => bs.map(b => b.getAttribute('aria-label'))")
    assert {"Upload file", "Capture from camera", "Paste from clipboard"} <= set(sources)
    crop = gopro_crop(box=(0, 300, 480, 620))  # 480x320, a real blurred GoPro crop
    upload = tmp_path / "street.png"
    crop.save(upload)
    page.locator("#input-image input[type=file]").set_input_files(str(upload))
    page.wait_for_selector("#input-image img")  # the upload preview a person sees
    page.click("#deblur-button")

    images = _wait_for_two_slider_images(page)
    assert [(i["w"], i["h"]) for i in images] == [crop.size, crop.size]
    assert all(i["shownW"] > 200 for i in images)  # drawn at a visible size, not collapsed
    summary = page.locator("#result-info").inner_text()
    assert re.search(r"480 x 320 px \(0\.15 MP\) deblurred in \d+\.\d\d s", summary), summary

    # drag the slider handle to a quarter of the image: the result then covers three quarters
    handle = page.locator("#result-slider [data-testid=slider]")
    image_box = page.locator(SLIDER_IMAGES).first.bounding_box()
    before = handle.bounding_box()
    page.mouse.move(before["x"] + before["width"] / 2, before["y"] + before["height"] / 2)
    page.mouse.down()
    page.mouse.move(image_box["x"] + image_box["width"] * 0.25, before["y"] + before["height"] / 2, steps=10)
    page.mouse.up()
    after = handle.bounding_box()
    handle_centre = (after["x"] + after["width"] / 2 - image_box["x"]) / image_box["width"]
    print(f"slider handle moved from {before['x']:.0f} px to {after['x']:.0f} px ({handle_centre:.0%} of the image)")
    assert after["x"] < before["x"] - 50 and abs(handle_centre - 0.25) < 0.05
    clip = page.eval_on_selector_all(SLIDER_IMAGES, "imgs => imgs[1].style.clipPath")
    left_inset = float(re.search(r"inset\([^)]*\s([\d.]+)%\)", clip).group(1))
    assert abs(left_inset - 25) < 5, clip
    shot = _screenshot(page, "app_browser_after_drag.png")
    print(f"screenshot: {shot}")

    with page.expect_download() as info:
        page.click("#download")
    download = tmp_path / "download.png"
    info.value.save_as(download)
    assert info.value.suggested_filename == "street_deblurred.png"
    with Image.open(download) as png:
        assert png.format == "PNG" and png.size == crop.size


def test_example_click_then_deblur(page):
    page.locator("[data-testid=gallery] img, .gallery img").first.click()  # first example thumbnail
    page.wait_for_selector("#input-image img")
    page.click("#deblur-button")
    images = _wait_for_two_slider_images(page)
    assert [(i["w"], i["h"]) for i in images] == [(640, 360), (640, 360)]
    assert "640 x 360 px" in page.locator("#result-info").inner_text()
    assert "CC BY 4.0" in page.content()  # the GoPro attribution is on the page
    _screenshot(page, "app_browser_example.png")


def test_clicking_an_example_shows_its_result(page):
    """Examples are cached lazily: the first click runs the default model, without pressing Deblur."""
    page.locator("[data-testid=gallery] img, .gallery img").nth(1).click()  # second example: 640x360
    images = _wait_for_two_slider_images(page)
    assert [(i["w"], i["h"]) for i in images] == [(640, 360), (640, 360)]
    assert "640 x 360 px" in page.locator("#result-info").inner_text()
    _screenshot(page, "app_browser_example_result.png")


def test_bad_upload_shows_readable_error_then_next_upload_works(page, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_bytes(b"not a picture at all\n" * 50)
    page.locator("#input-image input[type=file]").set_input_files(str(bad))
    page.click("#deblur-button")
    toast = page.locator("[data-testid=toast-text]").first
    toast.wait_for(state="visible", timeout=30_000)
    assert toast.inner_text() == (
        "Cannot read 'holiday.png': not an image file PIL can read (PNG, JPEG, WebP, TIFF, BMP, ...)"
    )
    page.wait_for_timeout(800)  # let the toast finish fading in before the screenshot
    page.screenshot(path=str(ARTIFACTS / "app_browser_bad_upload.png"))

    good = tmp_path / "good.png"
    gopro_crop(box=(600, 300, 856, 428)).save(good)
    page.locator("#input-image button[aria-label='Remove Image']").first.click()
    page.locator("#input-image input[type=file]").set_input_files(str(good))
    page.click("#deblur-button")
    images = _wait_for_two_slider_images(page)
    assert [(i["w"], i["h"]) for i in images] == [(256, 128), (256, 128)]
