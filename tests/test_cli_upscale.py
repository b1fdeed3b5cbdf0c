"""``sfumato upscale`` end to end: Lanczos, a tiny RRDBNet file, the built-in model's tiled
refine, an .ora flattened first, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sfumato.canvas.files.ora import save_ora
from sfumato.canvas.model.document import Document, Recipe
from sfumato.canvas.model.layers import PixelLayer
from sfumato.canvas.model.tiles import TiledSurface
from sfumato.planner.resample import resize_image
from sfumato.planner.sizing import Size

from sfumato import cli


def picture(w: int = 40, h: int = 30) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w, 3), np.uint8)
    out[..., 0] = x * 255 // w
    out[..., 1] = y * 255 // h
    out[..., 2] = 180
    out[8:20, 10:25] = (240, 210, 10)
    return out


def png(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path)
    return path


def read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def parameters(path: Path) -> str:
    return Image.open(path).text.get("parameters", "")


def one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("sfumato: error: "), err
    for needle in needles:
        assert needle in err[0], err


def test_lanczos_without_a_model(tmp_path: Path) -> None:
    source = picture()
    out = tmp_path / "out.png"
    assert cli.main(["upscale", str(png(tmp_path / "in.png", source)), "-o", str(out), "--scale", "3", "-q"]) == 0
    result = read(out)
    assert result.shape == (90, 120, 3)
    assert (result == resize_image(source, Size(120, 90))).all()
    assert "Upscaler: Lanczos" in parameters(out)


def test_an_ora_is_flattened_first(tmp_path: Path) -> None:
    doc = Document(40, 30, recipe=Recipe(prompt="a lake"))
    rgba = np.dstack([picture(), np.full((30, 40), 255, np.uint8)])
    doc.root.append(PixelLayer("paint", TiledSurface.from_array(rgba)))
    hidden = PixelLayer("hidden", TiledSurface.from_array(np.full((30, 40, 4), 255, np.uint8)), visible=False)
    doc.root.append(hidden)
    save_ora(doc, tmp_path / "doc.ora")
    out = tmp_path / "out.png"
    assert cli.main(["upscale", str(tmp_path / "doc.ora"), "-o", str(out), "--scale", "2", "-q"]) == 0
    assert (read(out) == resize_image(picture(), Size(80, 60))).all()


def test_a_tiny_rrdbnet_upscaler(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from sfumato.inference.upscalers import RRDBNet, UpscalerInfo, load_upscaler

    torch.manual_seed(0)
    net = RRDBNet(UpscalerInfo(nf=8, nb=1, gc=4))
    path = tmp_path / "4x-tiny.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    source = png(tmp_path / "in.png", picture())
    out4, out2 = tmp_path / "x4.png", tmp_path / "x2.png"
    assert cli.main(["upscale", str(source), "-o", str(out4), "--scale", "4", "--upscaler", str(path), "-q", "--device", "cpu"]) == 0
    expected = load_upscaler(path, device="cpu").upscale(picture())
    assert (read(out4) == expected).all()
    assert "Upscaler: 4x-tiny" in parameters(out4)
    # a 4x model for --scale 2: super-resolved, then averaged down onto the size
    assert cli.main(["upscale", str(source), "-o", str(out2), "--scale", "2", "--upscaler", str(path), "-q", "--device", "cpu"]) == 0
    assert read(out2).shape == (60, 80, 3)


def test_refine_with_the_builtin_model(tmp_path: Path) -> None:
    source = png(tmp_path / "in.png", picture(48, 48))
    out = tmp_path / "out.png"
    args = ["upscale", str(source), "-o", str(out), "--scale", "2", "--model", "builtin", "--prompt",
            "a yellow square on a blue background", "--steps", "8", "--seed", "7", "-q", "--device", "cpu"]  # fmt: skip
    assert cli.main(args) == 0
    result = read(out)
    assert result.shape == (96, 96, 3)
    text = parameters(out)
    assert "Denoising strength: 0.3" in text and "Seed: 7" in text and "Tile:" in text
    lanczos = resize_image(picture(48, 48), Size(96, 96)).astype(float)
    assert 0 < np.abs(result - lanczos).mean() < 40  # refined, not replaced


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = png(tmp_path / "in.png", picture())
    one_line_error(capsys, cli.main(["upscale", str(source), "-o", str(tmp_path / "o.jpg")]), "PNG")
    one_line_error(capsys, cli.main(["upscale", str(source), "-o", str(tmp_path / "o.png"), "--prompt", "x"]), "--model")
    one_line_error(capsys, cli.main(["upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o.png")]), "not found")
    one_line_error(capsys, cli.main(["upscale", str(source), "-o", str(tmp_path / "o.png"), "--upscaler", "missing.pth"]), "missing.pth")
    evil = tmp_path / "4x-evil.pth"
    torch.save({"x": Path("y")}, str(evil))  # a class instance: needs code to unpickle
    one_line_error(capsys, cli.main(["upscale", str(source), "-o", str(tmp_path / "o.png"), "--upscaler", str(evil), "--device", "cpu", "-q"]),
                   "4x-evil.pth", "refused")  # fmt: skip
    one_line_error(capsys, cli.main(["upscale", str(source), "-o", str(tmp_path / "o.png"), "--scale", "5"]), "2, 3, 4")
    one_line_error(capsys, cli.main(["upscale", str(source), "-o", str(tmp_path / "o.png"), "--strength", "0.5"]), "--model")
    big = png(tmp_path / "big.png", np.zeros((8, 5000, 3), np.uint8))
    one_line_error(capsys, cli.main(["upscale", str(big), "-o", str(tmp_path / "o.png"), "--scale", "4"]), "16384")
    assert not (tmp_path / "o.png").exists()


def test_an_ora_with_regions_refines_each_tile_with_its_regions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--scale 1 refines at the same size; the document's regions are planned per tile."""
    from sfumato.canvas.model.layers import Role

    from sfumato import upscale_cli

    doc = Document(256, 64, recipe=Recipe(prompt="a wall", seed=5, steps=2))
    rgba = np.dstack([resize_image(picture(), Size(256, 64)), np.full((64, 256), 255, np.uint8)])
    doc.root.append(PixelLayer("left", TiledSurface.from_array(np.full((64, 128, 4), 255, np.uint8)),
                               role=Role.REGION, prompt="red"))  # fmt: skip
    doc.root.append(PixelLayer("right", TiledSurface.from_array(np.full((64, 128, 4), 255, np.uint8)),
                               role=Role.REGION, prompt="blue", x=128))  # fmt: skip
    doc.root.append(PixelLayer("paint", TiledSurface.from_array(rgba)))
    save_ora(doc, tmp_path / "doc.ora")
    seen: list = []

    def stub(_engine, _cancel):  # noqa: ANN001, ANN202
        def run_tile(request, _on_step):  # noqa: ANN001, ANN202
            seen.append(request)
            return request.init.image

        return run_tile

    monkeypatch.setattr(upscale_cli, "_tile_runner", stub)
    out = tmp_path / "out.png"
    args = ["upscale", str(tmp_path / "doc.ora"), "-o", str(out), "--scale", "1", "--model", "builtin",
            "--tile", "64", "--overlap", "16", "-q", "--device", "cpu"]  # fmt: skip
    assert cli.main(args) == 0
    assert read(out).shape == (64, 256, 3)
    assert "Upscale: 1x" in parameters(out)
    regions = [[r.prompt for r in request.regions] for request in seen]
    assert regions[0] == ["red, a wall"] and regions[-1] == ["blue, a wall"]
    assert ["red, a wall", "blue, a wall"] in regions  # the tile over the boundary gets both
