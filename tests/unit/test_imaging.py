import io

import pytest
from PIL import Image

from imagestudio.datasets.imaging import InvalidImage, validate_image
from tests.conftest import png_bytes

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
