"""The frame cache: each dataset's frames decoded once, memory-mapped, rebuilt when the dataset changes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from s2kit.learning import cache as cache_module
from s2kit.learning.cache import CACHE_DIR
from s2kit.learning.data import load_frames
from tests.datasets.test_lerobot import make_episode, write


def frames(root: Path, **kw):
    return load_frames([root], cameras=["head", "wrist"], image_size=16, state=None, done_window=2, **kw)


def cache_files(root: Path) -> list[Path]:
    return sorted((root / CACHE_DIR).glob("frames-*.u8"))


def all_images(data) -> torch.Tensor:
    return data.frames(torch.arange(len(data)))


def test_the_cache_is_built_once_reused_and_gives_the_frames_decoding_gives(tiny_dataset: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    built = frames(tiny_dataset)
    [file] = cache_files(tiny_dataset)
    assert file.stat().st_size == len(built) * 2 * 3 * 16 * 16
    decoded = frames(tiny_dataset, cache="off")
    assert torch.equal(all_images(built), all_images(decoded))  # exactly the uncached frames, in order

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr("s2kit.learning.data.frame_decoder", lambda *a: no_decoding)
    mtime = file.stat().st_mtime_ns
    again = frames(tiny_dataset)
    assert torch.equal(all_images(again), all_images(decoded))
    assert cache_files(tiny_dataset) == [file] and file.stat().st_mtime_ns == mtime


def test_a_changed_dataset_rebuilds_its_cache_and_drops_the_old_one(tiny_dataset: Path) -> None:
    before = frames(tiny_dataset)
    [old] = cache_files(tiny_dataset)
    write(tiny_dataset, [make_episode(3, 6)], mode="append")  # an episode more
    after = frames(tiny_dataset)
    [new] = cache_files(tiny_dataset)
    assert new != old and len(after) == len(before) + 6
    assert torch.equal(all_images(after), all_images(frames(tiny_dataset, cache="off")))
    # the same bytes rewritten: a new modification time is a change too
    info = tiny_dataset / "meta" / "info.json"
    os.utime(info, ns=(info.stat().st_atime_ns, info.stat().st_mtime_ns + 10**9))
    frames(tiny_dataset)
    assert cache_files(tiny_dataset) != [new] and len(cache_files(tiny_dataset)) == 1


def test_other_sizes_and_cameras_keep_caches_of_their_own(tiny_dataset: Path) -> None:
    frames(tiny_dataset)
    load_frames([tiny_dataset], cameras=["wrist"], image_size=16, state=None, done_window=2)
    load_frames([tiny_dataset], cameras=["head", "wrist"], image_size=24, state=None, done_window=2)
    assert len(cache_files(tiny_dataset)) == 3


def test_a_torn_cache_file_is_rebuilt(tiny_dataset: Path) -> None:
    expected = all_images(frames(tiny_dataset))
    [file] = cache_files(tiny_dataset)
    file.write_bytes(file.read_bytes()[:100])
    assert torch.equal(all_images(frames(tiny_dataset)), expected)
    assert file.stat().st_size == expected.numel()


def test_a_read_only_dataset_is_cached_elsewhere_or_decoded_into_memory(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writable = cache_module._writable
    monkeypatch.setattr(cache_module, "_writable", lambda folder: CACHE_DIR not in folder.parts and writable(folder))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = all_images(frames(tiny_dataset, cache="off"))
    assert torch.equal(all_images(frames(tiny_dataset)), expected)
    assert not (tiny_dataset / CACHE_DIR).exists() and len(list((tmp_path / "xdg" / "s2kit" / "frames").rglob("frames-*.u8"))) == 1
    # a folder of the user's choice
    assert torch.equal(all_images(frames(tiny_dataset, cache=str(tmp_path / "mine"))), expected)
    assert len(list((tmp_path / "mine").rglob("frames-*.u8"))) == 1
    # nowhere writable: decoded into memory, with a line saying so
    monkeypatch.setattr(cache_module, "_writable", lambda folder: False)
    lines: list[str] = []
    fresh = tmp_path / "fresh"
    import shutil

    shutil.copytree(tiny_dataset, fresh)
    assert torch.equal(all_images(frames(fresh, log=lines.append)), expected)
    assert any("decoding into memory" in line for line in lines)


def test_the_cache_is_memory_mapped_not_read_whole(tiny_dataset: Path) -> None:
    """The images a run batches from are the cache file's pages (shared between runs), not a copy in the process."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        pytest.skip("no /proc/self/maps on this system")
    data = frames(tiny_dataset)
    [file] = cache_files(tiny_dataset)
    address = data.images.stores[0].data_ptr()
    spans = [line.split()[0].split("-") for line in maps.read_text().splitlines() if line.endswith(str(file))]
    assert any(int(start, 16) <= address < int(end, 16) for start, end in spans)


def test_an_array_made_from_the_frames_is_cached_beside_them_in_its_own_dtype(tiny_dataset: Path) -> None:
    """Another per-frame array (SOF's flow: float16) has a cache of its own, checked by its dtype and size like frames."""
    frames(tiny_dataset)
    made = []

    def decode():
        made.append(1)
        yield np.full((5, 1, 2, 4, 4), 0.5, np.float16)
        yield np.full((3, 1, 2, 4, 4), -1.25, np.float16)

    arrays = [cache_module.cached_frames(tiny_dataset, (1, 2, 4, 4), ["head"], "auto", decode, what="flow-test", dtype=np.float16) for _ in range(2)]
    assert made == [1] and all(a.dtype == np.float16 and a.shape == (8, 1, 2, 4, 4) for a in arrays)  # built once
    assert np.array_equal(arrays[1][:5], np.full((5, 1, 2, 4, 4), 0.5)) and np.array_equal(arrays[1][5:], np.full((3, 1, 2, 4, 4), -1.25))
    [flow] = (tiny_dataset / CACHE_DIR).glob("flow-test-*.f2")
    assert flow.stat().st_size == 8 * 2 * 4 * 4 * 2 and len(cache_files(tiny_dataset)) == 1  # the frames' file is untouched
    # a float32 request is another array: rebuilt, not misread
    again = cache_module.cached_frames(tiny_dataset, (1, 2, 4, 4), ["head"], "auto", decode, what="flow-test", dtype=np.float32)
    assert made == [1, 1] and again.dtype == np.float32


def test_a_folder_of_videos_is_fingerprinted_by_its_files(tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"one")
    key = cache_module.fingerprint(folder, ["video"], 16)
    (folder / ".s2kit-cache").mkdir()  # its own cache is no part of it
    (folder / ".s2kit-cache" / "x").write_bytes(b"cache")
    assert cache_module.fingerprint(folder, ["video"], 16) == key
    (folder / "b.mp4").write_bytes(b"two")
    assert cache_module.fingerprint(folder, ["video"], 16) != key
    assert cache_module.fingerprint(folder, ["video"], 16, "flow") != cache_module.fingerprint(folder, ["video"], 16)
