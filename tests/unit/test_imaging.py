import hashlib
import io
import os

import pytest
from PIL import Image

from imagestudio.datasets.imaging import InvalidImage, image_end, validate_image
from tests.conftest import png_bytes, zip_bytes

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 50_000_000, "thumbnail_size": 32}


def thumb_of(result):
    return Image.open(io.BytesIO(result.thumbnail_jpeg))


def test_valid_png_gives_size_format_hash_and_jpeg_thumbnail():
    result = validate_image(png_bytes(size=(100, 50)), **LIMITS)
    assert (result.width, result.height, result.format, result.mime) == (100, 50, "PNG", "image/png")
    assert len(result.sha256) == 64
    thumb = thumb_of(result)
    assert thumb.format == "JPEG" and max(thumb.size) == 32 and thumb.size == (32, 16)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
])
def test_refused_with_reason(data, reason):
    with pytest.raises(InvalidImage, match=reason):
        validate_image(data, **LIMITS)


def test_truncated_jpeg_is_refused():
    data = png_bytes(colour=(10, 200, 30), size=(400, 300), image_format="JPEG")
    with pytest.raises(InvalidImage, match="truncated|corrupt"):
        validate_image(data[: len(data) // 2], **LIMITS)


def test_too_many_pixels_is_refused_before_decoding():
    data = png_bytes(size=(3000, 3000), mode="L", colour=0)
    with pytest.raises(InvalidImage, match="pixels"):
        validate_image(data, **{**LIMITS, "max_pixels": 1_000_000})


def test_too_many_bytes_is_refused():
    with pytest.raises(InvalidImage, match="limit"):
        validate_image(png_bytes(), **{**LIMITS, "max_bytes": 10})


def test_exif_orientation_swaps_reported_size_and_rotates_thumbnail():
    image = Image.new("RGB", (80, 40), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    result = validate_image(out.getvalue(), **LIMITS)
    assert (result.width, result.height) == (40, 80)
    assert thumb_of(result).size == (16, 32)


@pytest.mark.parametrize("mode, colour", [("RGBA", (0, 0, 255, 0)), ("CMYK", (0, 255, 255, 0)), ("I;16", 40000),
                                          ("P", 3), ("LA", (10, 128))])
def test_unusual_modes_make_rgb_thumbnails(mode, colour):
    image_format = "TIFF" if mode in ("CMYK", "I;16") else "PNG"
    result = validate_image(png_bytes(colour=colour, mode=mode, image_format=image_format), **LIMITS)
    assert thumb_of(result).mode == "RGB"


def test_fully_transparent_pixels_render_white_in_thumbnail():
    result = validate_image(png_bytes(colour=(0, 0, 255, 0), mode="RGBA"), **LIMITS)
    assert thumb_of(result).getpixel((5, 5))[0] > 240


def test_sixteen_bit_values_are_scaled_not_clipped():
    result = validate_image(png_bytes(colour=32768, mode="I;16", image_format="TIFF"), **LIMITS)
    assert 110 < thumb_of(result).getpixel((5, 5))[0] < 145


def test_animated_gif_uses_first_frame():
    frames = [Image.new("P", (20, 20), i) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    result = validate_image(out.getvalue(), **LIMITS)
    assert result.format == "GIF" and (result.width, result.height) == (20, 20)


# ---------------------------------------------------------------- polyglots: data after the end of the image


def noisy(mode="RGB", size=(40, 30)):
    return Image.frombytes(mode, size, os.urandom(size[0] * size[1] * len(mode)))


def encoded(image, image_format, **save_args):
    out = io.BytesIO()
    image.save(out, format=image_format, **save_args)
    return out.getvalue()


def with_app1_thumbnail(jpeg):
    """A JPEG whose APP1 segment holds a whole JPEG (SOI to EOI), as camera EXIF thumbnails do."""
    payload = b"Exif\x00\x00" + encoded(noisy(size=(8, 8)), "JPEG")
    return jpeg[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def mpo_bytes():
    return encoded(noisy(), "MPO", save_all=True, append_images=[noisy()])


def animated_gif_bytes():
    frames = [Image.new("P", (20, 20), i) for i in range(3)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], comment=b"frames")


IMAGES = {
    "png": lambda: encoded(noisy(), "PNG"),
    "apng": lambda: encoded(noisy(), "PNG", save_all=True, append_images=[noisy()]),
    "jpeg": lambda: encoded(noisy(), "JPEG"),
    "progressive jpeg": lambda: encoded(noisy(size=(64, 64)), "JPEG", progressive=True),
    "jpeg with restart markers": lambda: encoded(noisy(size=(64, 64)), "JPEG", restart_marker_blocks=1),
    "jpeg with an EOI in its comment": lambda: encoded(noisy(), "JPEG", comment=b"\xff\xd9<?php ?>"),
    "jpeg with a thumbnail in an APP1 segment": lambda: with_app1_thumbnail(encoded(noisy(), "JPEG")),
    "mpo": mpo_bytes,
    "gif": lambda: encoded(noisy("L"), "GIF"),
    "animated gif with a comment": animated_gif_bytes,
    "webp": lambda: encoded(noisy(), "WEBP"),
    "lossless webp": lambda: encoded(noisy(), "WEBP", lossless=True),
    "bmp": lambda: encoded(noisy(), "BMP"),
}


@pytest.mark.parametrize("name", IMAGES)
def test_image_end_is_the_end_of_the_image_with_or_without_appended_data(name):
    data = IMAGES[name]()
    image = Image.open(io.BytesIO(data))
    assert image_end(data, image.format, image) == len(data)
    polyglot = data + zip_bytes({"payload.html": b"<script>alert(1)</script>"})
    image = Image.open(io.BytesIO(polyglot))
    assert image_end(polyglot, image.format, image) == len(data)


def test_tiff_has_no_end_to_find():
    data = encoded(noisy(), "TIFF")
    assert image_end(data, "TIFF", Image.open(io.BytesIO(data))) is None
    result = validate_image(data + b"trailing", **LIMITS)
    assert result.trailing_bytes == 0 and result.bytes == len(data) + 8  # kept whole, served as image/tiff


@pytest.mark.parametrize("name", ["png", "jpeg", "mpo", "animated gif with a comment", "webp", "bmp"])
def test_appended_data_is_cut_off_and_the_image_kept(name):
    data = IMAGES[name]()
    clean = validate_image(data, **LIMITS)
    assert clean.trailing_bytes == 0 and clean.trailing_note == ""
    polyglot = validate_image(data + b"PK\x03\x04" + os.urandom(500), **LIMITS)
    assert polyglot.trailing_bytes == 504 and polyglot.bytes == len(data)
    assert polyglot.sha256 == clean.sha256 == hashlib.sha256(data).hexdigest()
    assert (polyglot.format, polyglot.width, polyglot.height) == (clean.format, clean.width, clean.height)
    assert f"504 bytes after the end of the {clean.format} image were removed" in polyglot.trailing_note


def test_a_declared_size_that_cuts_the_pixels_is_refused():
    data = bytearray(encoded(noisy(), "BMP"))
    data[2:6] = (len(data) - 100).to_bytes(4, "little")  # the header says the file ends inside the pixels
    with pytest.raises(InvalidImage, match="once the 100 bytes after the end of the image were removed"):
        validate_image(bytes(data), **LIMITS)
