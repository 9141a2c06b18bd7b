"""Loaders, paired transforms, train/val datasets and bad-data errors, on small real images written to tmp_path."""

from __future__ import annotations

import io
import json
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deblurgan_hf.data import (
    PairedTransform,
    build_train_dataset,
    build_val_dataset,
    check_enough,
    detect_kind,
    load_pairs,
    parse_source,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
REAL = DATA / "gopro_real"
sys.path.insert(0, str(REPO / "scripts"))

W, H = 96, 72  # small real crops: fast tests
CROP = 48


pytestmark = pytest.mark.usefixtures("one_thread")


def real_pairs(n: int, split: str = "train") -> list[tuple[str, np.ndarray, np.ndarray]]:
    """n real GoPro pairs cut to W x H (same region of blur and sharp)."""
    out = []
    for f in sorted((REAL / split / "blur").glob("*.png"))[:n]:
        box = (600, 300, 600 + W, 300 + H)
        b = np.asarray(Image.open(f).convert("RGB").crop(box))
        s = np.asarray(Image.open(REAL / split / "sharp" / f.name).convert("RGB").crop(box))
        out.append((f.stem, b, s))
    return out


def save(arr: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32) / 255).permute(2, 0, 1)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """Every supported layout, written from real images."""
    root = tmp_path_factory.mktemp("data")
    pairs = real_pairs(4)
    for name, b, s in pairs:  # paired folder
        save(b, root / "paired" / "blur" / f"{name}.png")
        save(s, root / "paired" / "sharp" / f"{name}.png")
    rows = []
    for i, (name, b, s) in enumerate(pairs[:3]):  # imagefolder with metadata.jsonl
        save(b, root / "meta" / "in" / f"{i}.png")
        save(s, root / "meta" / "gt" / f"{i}.png")
        rows.append({"blur_file_name": f"in/{i}.png", "sharp_file_name": f"gt/{i}.png", "name": name})
    (root / "meta" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # tiny GOPRO_Large tree (blur_gamma: a different real frame so the choice is visible)
    for split, seqs in (("train", ("GOPR0001_00_00", "GOPR0002_00_00")), ("test", ("GOPR0003_00_00",))):
        for k, seq in enumerate(seqs):
            for j, (_name, b, s) in enumerate(pairs[k * 2 : k * 2 + 2] if split == "train" else pairs[:3]):
                save(b, root / "GOPRO_Large" / split / seq / "blur" / f"{j:06d}.png")
                save(np.ascontiguousarray(b[::-1]), root / "GOPRO_Large" / split / seq / "blur_gamma" / f"{j:06d}.png")
                save(s, root / "GOPRO_Large" / split / seq / "sharp" / f"{j:06d}.png")
    for f in sorted((DATA / "sharp" / "kodak24").glob("*.png"))[:5]:  # sharp-only photos
        im = Image.open(f).convert("RGB")
        save(np.asarray(im.resize((im.width // 4, im.height // 4), Image.Resampling.BICUBIC)), root / "sharp" / f.name)
    load_pairs(f"paired:{root / 'paired'}").save_to_disk(str(root / "disk"))
    # a local folder in Hub layout: parquet with embedded PNG bytes and other column names
    import datasets

    def png(arr):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    feats = datasets.Features({"input": datasets.Image(), "target": datasets.Image(), "id": datasets.Value("string")})
    for split, sel in (("train", pairs[:3]), ("validation", pairs[3:])):
        ds = datasets.Dataset.from_dict({"input": [png(b) for _, b, _ in sel], "target": [png(s) for _, _, s in sel],
                                         "id": [n for n, _, _ in sel]}, features=feats)
        ds.to_parquet(str(root / "hubdir" / "data" / f"{split}-00000-of-00001.parquet"))
    return root


def first_pair_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    row = ds[0]
    return np.asarray(row["blur"].convert("RGB")), np.asarray(row["sharp"].convert("RGB"))


# ---------------------------------------------------------------------------------------------- loaders

def test_paired_folder(data_root):
    ds = load_pairs(f"paired:{data_root / 'paired'}")
    pairs = real_pairs(4)
    assert ds.column_names == ["blur", "sharp", "name"] and len(ds) == 4
    assert ds["name"] == [n for n, _, _ in pairs]
    b, s = first_pair_arrays(ds)
    assert np.array_equal(b, pairs[0][1]) and np.array_equal(s, pairs[0][2])


def test_metadata_imagefolder(data_root):
    ds = load_pairs(str(data_root / "meta"))  # kind auto-detected
    assert len(ds) == 3 and ds["name"] == [n for n, _, _ in real_pairs(3)]
    b, s = first_pair_arrays(ds)
    assert np.array_equal(b, real_pairs(1)[0][1]) and np.array_equal(s, real_pairs(1)[0][2])
    # the same folder through datasets' own imagefolder builder (load_dataset)
    hub = load_pairs(f"hub:{data_root / 'meta'}")
    assert sorted(hub["name"]) == sorted(ds["name"])


def test_gopro_layout_splits_and_blur_choice(data_root):
    root = data_root / "GOPRO_Large"
    train = load_pairs(f"gopro:{root}")
    assert len(train) == 4 and train["name"][0] == "GOPR0001_00_00-000000"
    test = load_pairs(str(root), split="test")
    assert len(test) == 3 and all(n.startswith("GOPR0003_00_00-") for n in test["name"])
    gamma = load_pairs(f"gopro:{root}?blur=blur_gamma")
    b, _ = first_pair_arrays(train)
    g, _ = first_pair_arrays(gamma)
    assert np.array_equal(g, b[::-1])
    with pytest.raises(ValueError, match="blur_gamma"):
        load_pairs(f"gopro:{root}?blur=blurry")
    with pytest.raises(FileNotFoundError, match="split folder .*valid.* expected train/ or test/"):
        load_pairs(f"gopro:{root}?split=valid")


def test_save_to_disk_copy(data_root):
    ds = load_pairs(f"disk:{data_root / 'disk'}")
    assert len(ds) == 4 and ds.column_names == ["blur", "sharp", "name"]
    b, s = first_pair_arrays(ds)
    assert np.array_equal(s, real_pairs(1)[0][2])
    assert detect_kind(data_root / "disk") == "disk"


def test_hub_layout_folder_with_column_names(data_root):
    src = f"hub:{data_root / 'hubdir'}?blur_column=input&sharp_column=target&name_column=id"
    train = load_pairs(src)
    assert len(train) == 3 and train.column_names == ["blur", "sharp", "name"]
    assert train["name"] == [n for n, _, _ in real_pairs(3)]
    assert np.array_equal(first_pair_arrays(train)[0], real_pairs(1)[0][1])
    val = load_pairs(src, split="test")  # "test" falls back to the validation split
    assert len(val) == 1
    with pytest.raises(ValueError, match=r"no column 'blur' \(columns: \['input', 'target', 'id'\]\); pass blur_column"):
        load_pairs(f"hub:{data_root / 'hubdir'}?sharp_column=target")
    sharp = load_pairs(f"hub:{data_root / 'hubdir'}?sharp_column=target&sharp_only=1")
    assert sharp.column_names == ["sharp", "name"] and len(sharp) == 3
    with pytest.raises(ValueError, match="no split 'dev'"):
        load_pairs(src + "&split=dev")


def test_sharp_only_folder(data_root):
    ds = load_pairs(f"sharp:{data_root / 'sharp'}")
    assert ds.column_names == ["sharp", "name"] and len(ds) == 5
    assert detect_kind(data_root / "sharp") == "sharp"


def test_source_specs():
    spec = parse_source("hub:user/name?split=validation&blur_column=input")
    assert (spec.kind, spec.location, spec.options) == ("hub", "user/name", {"split": "validation", "blur_column": "input"})
    assert parse_source("../shared/data/sharp/urban100").kind is None
    assert detect_kind("someone/gopro-large") == "hub"
    with pytest.raises(ValueError, match="unknown source kind 'folder'"):
        parse_source("folder:/tmp/x")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_kind("/nonexistent/folder/x")
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['crop'\]"):
        load_pairs(f"paired:{REAL / 'train'}?crop=5")


def test_undetectable_folder_says_what_was_found(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=r"found images/, notes.txt; expected blur/ \+ sharp/"):
        load_pairs(str(tmp_path))


# ---------------------------------------------------------------------------------------------- bad data

def make_paired(tmp_path: Path, n: int = 2) -> Path:
    for name, b, s in real_pairs(n):
        save(b, tmp_path / "blur" / f"{name}.png")
        save(s, tmp_path / "sharp" / f"{name}.png")
    return tmp_path


def test_missing_partner(tmp_path):
    root = make_paired(tmp_path)
    lonely = sorted((root / "sharp").glob("*.png"))[1]
    lonely.unlink()
    with pytest.raises(FileNotFoundError, match=rf"blur/{lonely.name} has no partner .*sharp/{lonely.name}"):
        build_train_dataset([f"paired:{root}"], crop_size=CROP)


def test_mismatched_sizes(tmp_path):
    root = make_paired(tmp_path)
    f = sorted((root / "sharp").glob("*.png"))[0]
    Image.open(f).crop((0, 0, W - 8, H)).save(f)
    with pytest.raises(ValueError, match=rf"pair size mismatch: .*blur/{f.name} is {W}x{H} but .*sharp/{f.name} is {W - 8}x{H}"):
        build_val_dataset([str(root)])


def test_unreadable_file(tmp_path):
    root = make_paired(tmp_path)
    f = sorted((root / "blur").glob("*.png"))[0]
    f.write_bytes(f.read_bytes()[:200])  # truncated PNG
    with pytest.raises(ValueError, match=rf"cannot read image .*{f.name}"):
        build_train_dataset([f"paired:{root}"], crop_size=CROP)


def test_empty_folders(tmp_path):
    (tmp_path / "blur").mkdir()
    (tmp_path / "sharp").mkdir()
    with pytest.raises(ValueError, match="empty paired folder"):
        load_pairs(f"paired:{tmp_path}")
    (tmp_path / "photos").mkdir()
    with pytest.raises(ValueError, match="empty folder .*photos: no images"):
        load_pairs(f"sharp:{tmp_path / 'photos'}")
    with pytest.raises(ValueError, match="no data sources"):
        build_train_dataset([], crop_size=CROP)


def test_metadata_missing_field(tmp_path):
    root = make_paired(tmp_path, 1)
    name = sorted((root / "blur").glob("*.png"))[0].name
    (root / "meta").mkdir()
    shutil.move(root / "blur", root / "meta" / "blur")
    (root / "meta" / "metadata.jsonl").write_text(json.dumps({"blur_file_name": f"blur/{name}", "target": name}) + "\n")
    with pytest.raises(ValueError, match=r"metadata.jsonl line 1: missing field\(s\) \['sharp_file_name'\]"):
        load_pairs(str(root / "meta"))


def test_wrong_column_names_in_saved_dataset(tmp_path, data_root):
    ds = load_pairs(f"disk:{data_root / 'disk'}").rename_column("sharp", "gt")
    ds.save_to_disk(str(tmp_path / "renamed"))
    with pytest.raises(ValueError, match=r"no column 'sharp' for the sharp images \(columns: \['blur', 'gt', 'name'\]\)"):
        build_train_dataset([f"disk:{tmp_path / 'renamed'}"], crop_size=CROP)
    assert len(load_pairs(f"disk:{tmp_path / 'renamed'}?sharp_column=gt")) == 4


def test_too_small_images_and_datasets(data_root):
    with pytest.raises(ValueError, match=r"image '.*' is 96x72, smaller than crop_size 80 \(4 such images\)"):
        build_train_dataset([f"paired:{data_root / 'paired'}"], crop_size=80)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_train_dataset([f"paired:{data_root / 'paired'}", f"sharp:{data_root / 'sharp'}"], crop_size=64, min_size=100)
    assert len(ds) == 5 and "skipping 4 of 4 image(s) smaller than min_size 100" in str(caught[0].message)
    with pytest.raises(ValueError, match="dataset has 4 item.*fewer than one batch of 8"):
        check_enough(build_train_dataset([f"paired:{data_root / 'paired'}"], crop_size=CROP), 8)


# ---------------------------------------------------------------------------------------------- transforms

def test_paired_transform_same_geometry_on_both():
    _, b, s = real_pairs(1)[0]
    tb, ts = as_tensor(b), as_tensor(s)
    t = PairedTransform(CROP)
    seen = set()
    for seed in range(12):
        g = torch.Generator().manual_seed(seed)
        cb, cs, half = t(tb, ts, ts * 0.5, generator=g)
        assert cb.shape == cs.shape == (3, CROP, CROP)
        torch.testing.assert_close(half, cs * 0.5)
        seen.add(locate(cs, ts))
        assert locate(cb, tb) == locate(cs, ts)
    assert len({g for _, g in seen}) > 3  # flips and rotations happen
    with pytest.raises(ValueError, match="differ in size"):
        t(tb, ts[:, :-1])


def locate(crop: torch.Tensor, image: torch.Tensor) -> tuple[tuple[int, int], tuple[bool, bool, int]]:
    """Where (top, left) and how (flips, rot90) ``crop`` was cut from ``image``."""
    c = crop.shape[-1]
    for hf in (False, True):
        for vf in (False, True):
            for rot in range(4):
                # undo: rotate back, then flips
                x = torch.rot90(crop, -rot, (-2, -1))
                x = x.flip(-2) if vf else x
                x = x.flip(-1) if hf else x
                corner = (image[:, : image.shape[1] - c + 1, : image.shape[2] - c + 1] == x[:, :1, :1]).all(0)
                for top, left in corner.nonzero().tolist():
                    if torch.equal(image[:, top : top + c, left : left + c], x):
                        return (top, left), (hf, vf, rot)
    raise AssertionError("crop not found in image")


# ---------------------------------------------------------------------------------------------- train/val datasets

def sources(root: Path) -> list[str]:
    return [f"paired:{root / 'paired'}", f"gopro:{root / 'GOPRO_Large'}", f"sharp:{root / 'sharp'}"]


def test_train_items_real_crops_and_synthetic_blur(data_root):
    ds = build_train_dataset(sources(data_root), crop_size=CROP, seed=3)
    assert len(ds) == 4 + 4 + 5
    real = load_pairs(f"paired:{data_root / 'paired'}")
    for i in range(len(ds)):
        item = ds[i]
        assert set(item) == {"blur", "sharp", "name"}
        assert item["blur"].shape == item["sharp"].shape == (3, CROP, CROP) and item["blur"].dtype == torch.float32
        assert 0 <= float(item["blur"].min()) and float(item["blur"].max()) <= 1
        if i < 4:  # real pair: the same crop and geometry of the file's blur and sharp
            b, s = (as_tensor(np.asarray(real[i][k])) for k in ("blur", "sharp"))
            assert item["name"] == real[i]["name"]
            assert locate(item["blur"], b) == locate(item["sharp"], s)
        if i >= 8:  # synthetic: sharp is a crop of the photo, blur is smoother
            photo = as_tensor(np.asarray(Image.open(data_root / "sharp" / f"{item['name']}.png").convert("RGB")))
            locate(item["sharp"], photo)
            assert item["blur"].diff(dim=-1).abs().mean() < item["sharp"].diff(dim=-1).abs().mean()


def test_train_determinism_per_seed_epoch_index(data_root):
    ds = build_train_dataset(sources(data_root), crop_size=CROP, seed=1, blur={"mode": "trajectory", "jpeg_prob": 0.5})
    again = build_train_dataset(sources(data_root), crop_size=CROP, seed=1, blur={"mode": "trajectory", "jpeg_prob": 0.5})
    other_seed = build_train_dataset(sources(data_root), crop_size=CROP, seed=2, blur={"mode": "trajectory", "jpeg_prob": 0.5})
    idx = [0, 9, 12]  # real, synthetic, synthetic
    first = [ds[i] for i in idx]
    ds.set_epoch(1)
    second = [ds[i] for i in idx]
    again.set_epoch(1)  # a resumed run: fresh dataset, same epoch -> same samples
    for a, b in zip(second, [again[i] for i in idx]):
        assert torch.equal(a["blur"], b["blur"]) and torch.equal(a["sharp"], b["sharp"]) and a["name"] == b["name"]
    for a, b in zip(first, second):  # new crops and new blur every epoch
        assert not torch.equal(a["blur"], b["blur"])
    assert not torch.equal(other_seed[9]["blur"], first[1]["blur"])
    ds.set_epoch(0)
    assert torch.equal(ds[9]["blur"], first[1]["blur"])
    assert torch.equal(ds[np.int64(9)]["blur"], first[1]["blur"]) and torch.equal(ds[torch.tensor(9)]["blur"], first[1]["blur"])


def test_kernel_mode_training(data_root):
    ds = build_train_dataset([f"sharp:{data_root / 'sharp'}"], crop_size=CROP, blur={"mode": "kernel", "size": 15})
    item = ds[0]
    assert item["blur"].shape == (3, CROP, CROP) and not torch.equal(item["blur"], item["sharp"])
    with pytest.raises(ValueError, match="unknown kernel-blur parameter"):
        build_train_dataset([f"sharp:{data_root / 'sharp'}"], crop_size=CROP, blur={"mode": "kernel", "length": 0.1})


def test_real_fraction_mixing(data_root):
    srcs = [f"paired:{data_root / 'paired'}", f"sharp:{data_root / 'sharp'}"]
    ds = build_train_dataset(srcs, crop_size=CROP, real_fraction=1 / 3)
    real_names = set(load_pairs(f"paired:{data_root / 'paired'}")["name"])
    for epoch in range(3):
        ds.set_epoch(epoch)
        names = [ds.row(i) for i in range(len(ds))]
        n_real = sum(ds.parts[p].paired for p, _ in names)
        assert len(ds) == 9 and n_real == 3  # round(9 / 3)
    ds.set_epoch(0)
    seen0 = {ds[i]["name"] for i in range(3)}
    ds.set_epoch(1)
    seen1 = {ds[i]["name"] for i in range(3)}
    assert seen0 <= real_names and seen1 <= real_names and seen0 != seen1  # real rows rotate over epochs
    with pytest.raises(ValueError, match="no source has real pairs"):
        build_train_dataset([f"sharp:{data_root / 'sharp'}"], crop_size=CROP, real_fraction=0.5)
    with pytest.raises(ValueError, match="no sharp-only source"):
        build_train_dataset([f"paired:{data_root / 'paired'}"], crop_size=CROP, real_fraction=0.5)


def test_dataloader_two_workers_equals_single_process(data_root):
    ds = build_train_dataset(sources(data_root), crop_size=CROP, seed=5)
    ds.set_epoch(2)

    def batches(workers: int) -> list[dict]:
        loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=workers, shuffle=False)
        return list(loader)

    single, multi = batches(0), batches(2)
    assert len(single) == len(multi) == 4
    for a, b in zip(single, multi):
        assert a["name"] == b["name"]
        assert torch.equal(a["blur"], b["blur"]) and torch.equal(a["sharp"], b["sharp"])

    # persistent workers follow set_epoch (the epoch is in shared memory)
    loader = torch.utils.data.DataLoader(ds, batch_size=13, num_workers=2, persistent_workers=True)
    for epoch in (3, 4):
        ds.set_epoch(epoch)
        (got,) = list(loader)
        want = [ds[i] for i in range(len(ds))]
        assert torch.equal(got["blur"], torch.stack([w["blur"] for w in want]))


def test_val_dataset_fixed_full_and_center_crop(data_root):
    srcs = [f"gopro:{data_root / 'GOPRO_Large'}", f"sharp:{data_root / 'sharp'}"]
    full = build_val_dataset(srcs, seed=0)
    assert len(full) == 3 + 5  # gopro defaults to its test split
    item = full[0]
    _, b, s = real_pairs(1)[0]
    assert torch.equal(item["blur"], as_tensor(b)) and torch.equal(item["sharp"], as_tensor(s))
    syn = full[4]
    photo = Image.open(data_root / "sharp" / f"{syn['name']}.png")
    assert syn["blur"].shape == (3, photo.height, photo.width)
    again = build_val_dataset(srcs, seed=0)
    assert torch.equal(again[4]["blur"], syn["blur"]) and torch.equal(full[4]["blur"], syn["blur"])
    assert not torch.equal(build_val_dataset(srcs, seed=1)[4]["blur"], syn["blur"])
    crop = build_val_dataset(srcs, center_crop=40, max_size=80)
    assert crop[0]["blur"].shape == (3, 40, 40) and crop[4]["blur"].shape == (3, 40, 40)
    small = build_val_dataset(srcs, max_size=48)
    assert max(small[0]["blur"].shape[1:]) == 48 and max(small[4]["sharp"].shape[1:]) == 48


# ---------------------------------------------------------------------------------------------- GOPRO -> Hub dataset

def test_gopro_to_hub_save_to_disk(data_root, tmp_path):
    import gopro_to_hub

    tree = tmp_path / "GOPRO_Large"
    shutil.copytree(data_root / "GOPRO_Large", tree)
    out = tmp_path / "gopro_hf"
    assert gopro_to_hub.main([str(tree), "--save_to_disk", str(out)]) == 0
    card = (out / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "Nah_2017_CVPR" in card and "| train | 4 |" in card
    shutil.rmtree(tree)  # the saved dataset holds the image bytes, not paths
    test = load_pairs(f"disk:{out}?split=test")
    assert len(test) == 3 and test["name"][0] == "GOPR0003_00_00-000000"
    assert np.array_equal(first_pair_arrays(test)[1], real_pairs(1)[0][2])
    assert len(build_val_dataset([f"disk:{out}"])) == 3  # val picks the test split
    with pytest.raises(SystemExit):
        gopro_to_hub.main([str(data_root / "GOPRO_Large"), "--save_to_disk", str(out)])  # exists, no --overwrite


def test_gopro_to_hub_push_then_load_pairs_from_hub(data_root, tmp_path):
    """The real datasets/huggingface_hub clients against the local Hub stand-in (tests/hub_server.py):
    push with the script, then `load_pairs("hub:ID?split=test")` from a fresh cache."""
    import subprocess

    sys.path.insert(0, str(REPO / "tests"))
    from hub_server import HubServer

    with HubServer(tmp_path / "server") as hub:
        def run(args: list[str], home: str) -> str:
            env = {**hub.client_env(tmp_path / home), "PYTHONPATH": str(REPO)}
            proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
            assert proc.returncode == 0, proc.stderr[-3000:]
            return proc.stdout

        out = run([str(REPO / "scripts" / "gopro_to_hub.py"), str(data_root / "GOPRO_Large"), "--push_to_hub", "user/gopro"], "push")
        assert "pushed train: 4 pairs, test: 3 pairs to user/gopro" in out
        code = ("from deblurgan_hf.data import load_pairs; import numpy as np; d = load_pairs('hub:user/gopro?split=test'); "
                "print(len(d), d['name'][0], np.asarray(d[0]['sharp']).sum())")
        out = run(["-c", code], "pull")
        assert hub.unhandled == []
        card = hub.files("user/gopro", repo_type="dataset")["README.md"].decode()
    n, name, total = out.split()
    assert (int(n), name, int(total)) == (3, "GOPR0003_00_00-000000", int(real_pairs(1)[0][2].astype(np.int64).sum()))
    assert "license: cc-by-4.0" in card and "Nah_2017_CVPR" in card and "dataset_info:" in card
    assert 'load_pairs("hub:user/gopro?split=test")' in card
