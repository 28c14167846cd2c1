"""SOF's optical flow against OpenCV's Farneback: endpoint error on known-flow pairs, time per 96 x 96 pair.

    .venv/bin/python benchmarks/optical_flow.py [--pairs 8] [--repeats 300] [--json]

Needs OpenCV (``pip install -e '.[bench]'``). OpenCV runs with the
parameters of its optical-flow tutorial (pyramid scale 0.5, 3 levels,
window 15, 3 iterations, polynomial neighbourhood 5, sigma 1.2), s2kit's
flow with its defaults.

Pairs with known flow, 96 x 96, ``--pairs`` of each case:

* translation, rotation, zoom: a coloured 1/f-noise picture moved by a
  random shift (up to 5 px each way), rotation about the centre (2 to 8
  degrees either way) or zoom about the centre (0.9 to 1.1);
* sim field: the head camera of the simulated HSR and TX-G2 (seeds 0, 1,
  ...: alternately), moved by a smooth random field (three sinusoids per
  component, 0.5 to 1.5 px each).

The first frame of a pair is the second one sampled along the flow. Both
are made at 4x the size (pictures and renders 384 x 384, bilinear sampling
there) and averaged down 4 x 4, as a camera integrates light over its
pixels, then rounded to uint8. Endpoint error is the mean distance between
estimated and true flow vectors over the pixels whose match stays inside
the frame; the zero field's error (the true flow's mean length there) is
reported beside it as the scale.

Time: one pair at a time on one thread (numba and OpenCV both set to one),
the two interleaved over ``--repeats`` rounds, medians reported. OpenCV is
timed from grey frames, s2kit's flow from the RGB frames (its grey
conversion included). Then a rendered 64-frame HSR video at once
(``optical_flow`` over the video: pyramids shared by neighbouring pairs,
pairs in parallel) on one thread and on every core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np

os.environ.setdefault("MUJOCO_GL", "osmesa")

import cv2  # noqa: E402
import numba  # noqa: E402

from s2kit.core.registry import load_registry  # noqa: E402
from s2kit.core.types import EE_DELTA  # noqa: E402
from s2kit.plugins.skills.sof.flow import optical_flow, warp  # noqa: E402

SIZE = 96
SUPER = 4  # pairs are made at SUPER x the size, then averaged down
#: OpenCV's tutorial parameters: pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags.
FARNEBACK = (0.5, 3, 15, 3, 5, 1.2, 0)
Field = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def known_pair(picture: np.ndarray, field: Field) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames (first, second) whose flow is ``field`` (of 96-pixel coordinates), from a picture SUPER x their size."""
    big = np.mgrid[0 : SUPER * SIZE, 0 : SUPER * SIZE].astype(np.float32)
    # big pixel X covers small coordinate (X - (SUPER - 1) / 2) / SUPER: the centres of its block agree
    u, v = field((big[1] - (SUPER - 1) / 2) / SUPER, (big[0] - (SUPER - 1) / 2) / SUPER)
    first_big = warp(picture, SUPER * np.stack([u, v], axis=-1).astype(np.float32))

    def down(image: np.ndarray) -> np.ndarray:
        mean = image.reshape(SIZE, SUPER, SIZE, SUPER, 3).mean(axis=(1, 3))
        return np.clip(np.rint(mean), 0, 255).astype(np.uint8)

    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    return down(first_big), down(picture), np.stack(field(x, y), axis=-1).astype(np.float32)


def noise_picture(rng: np.random.Generator) -> np.ndarray:
    """Coloured 1/f noise, SUPER x 96 pixels square, float32 0-255."""
    n = SUPER * SIZE
    f = np.fft.fftfreq(n)
    k = np.hypot(f[:, None], f[None, :])
    k[0, 0] = 1.0
    planes = []
    for _ in range(3):
        spectrum = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) / k
        spectrum[0, 0] = 0.0
        planes.append(np.fft.ifft2(spectrum).real)
    image = np.stack(planes, axis=-1)
    return np.clip((image - image.mean()) / (4 * image.std()) * 255 + 127.5, 0, 255).astype(np.float32)


def sim_pictures(count: int) -> list[np.ndarray]:
    """Head-camera renders, SUPER x 96 pixels square, of HSR and TX-G2 alternately (seeds 0, 1, ...)."""
    registry = load_registry(env={})
    robots = {name: registry.create("robot", {"name": name, "image_height": SUPER * SIZE, "image_width": SUPER * SIZE})
              for name in ("hsr", "txg2")}  # fmt: skip
    try:
        return [robots[("hsr", "txg2")[i % 2]].reset(seed=i // 2).images["head"].astype(np.float32) for i in range(count)]
    finally:
        for robot in robots.values():
            robot.close()


def cases(pairs: int) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    c = (SIZE - 1) / 2
    out: dict[str, list] = {"translation": [], "rotation": [], "zoom": [], "sim field": []}
    for _ in range(pairs):
        du, dv = rng.uniform(-5, 5, size=2)
        out["translation"].append(known_pair(noise_picture(rng), lambda x, y, du=du, dv=dv: (x * 0 + du, y * 0 + dv)))
    for _ in range(pairs):
        a = np.deg2rad(rng.uniform(2, 8) * rng.choice([-1, 1]))

        def turn(x, y, a=a):
            return np.cos(a) * (x - c) - np.sin(a) * (y - c) - (x - c), np.sin(a) * (x - c) + np.cos(a) * (y - c) - (y - c)

        out["rotation"].append(known_pair(noise_picture(rng), turn))
    for _ in range(pairs):
        s = rng.uniform(0.9, 1.1)
        out["zoom"].append(known_pair(noise_picture(rng), lambda x, y, s=s: ((s - 1) * (x - c), (s - 1) * (y - c))))
    for picture in sim_pictures(pairs):
        k = rng.uniform(0.5, 2.0, size=(2, 3, 2)) * 2 * np.pi / SIZE  # wave vectors: half to two periods per frame
        phase = rng.uniform(0, 2 * np.pi, size=(2, 3))
        amp = rng.uniform(0.5, 1.5, size=(2, 3))

        def smooth(x, y, k=k, phase=phase, amp=amp):
            return tuple(sum(amp[i, j] * np.sin(k[i, j, 0] * x + k[i, j, 1] * y + phase[i, j]) for j in range(3)) for i in range(2))

        out["sim field"].append(known_pair(picture, smooth))
    return out


def endpoint_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    tx, ty = x + truth[..., 0], y + truth[..., 1]
    inside = (tx >= 0) & (tx <= SIZE - 1) & (ty >= 0) & (ty <= SIZE - 1)
    return float(np.linalg.norm(estimate - truth, axis=-1)[inside].mean())


def farneback(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return cv2.calcOpticalFlowFarneback(first, second, None, *FARNEBACK)


def grey(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def accuracy(all_cases: dict) -> list[dict]:
    rows = []
    for name, pairs in all_cases.items():
        ours = [endpoint_error(optical_flow(np.stack([a, b]))[0], truth) for a, b, truth in pairs]
        theirs = [endpoint_error(farneback(grey(a), grey(b)), truth) for a, b, truth in pairs]
        still = np.mean([endpoint_error(np.zeros_like(t), t) for _, _, t in pairs])  # what no motion at all scores
        rows.append({"case": name, "pairs": len(pairs), "epe_zero": round(float(still), 3),
                     "epe_ours": round(float(np.mean(ours)), 4), "epe_opencv": round(float(np.mean(theirs)), 4),
                     "ratio": round(float(np.mean(ours) / np.mean(theirs)), 3)})  # fmt: skip
    return rows


def pair_timing(all_cases: dict, repeats: int) -> dict:
    """Median ms per pair on one thread, OpenCV and s2kit interleaved round by round."""
    numba.set_num_threads(1)
    cv2.setNumThreads(1)
    pairs = [(np.stack([a, b]), grey(a), grey(b)) for items in all_cases.values() for a, b, _ in items]
    optical_flow(pairs[0][0])  # compiled (or loaded from numba's cache) before timing
    ours, theirs = [], []
    for r in range(repeats):
        rgb, g1, g2 = pairs[r % len(pairs)]
        start = time.perf_counter()
        farneback(g1, g2)
        theirs.append(time.perf_counter() - start)
        start = time.perf_counter()
        optical_flow(rgb)
        ours.append(time.perf_counter() - start)
    ms_ours, ms_theirs = 1e3 * float(np.median(ours)), 1e3 * float(np.median(theirs))
    return {"ms_ours": round(ms_ours, 3), "ms_opencv": round(ms_theirs, 3), "ratio": round(ms_ours / ms_theirs, 3)}


def hsr_video(frames: int) -> np.ndarray:
    """The HSR head camera while the hand sweeps over the table, 96 x 96."""
    robot = load_registry(env={}).create("robot", {"name": "hsr"})
    try:
        images = [robot.reset(seed=0).images["head"]]
        for t in range(frames - 1):
            robot.apply(np.array([0.02 * np.sin(t / 6), 0.02 * np.cos(t / 6), 0, 0, 0, 0.05, 1], np.float32), EE_DELTA)
            images.append(robot.observe().images["head"])
    finally:
        robot.close()
    return np.stack(images)


def video_timing(frames: np.ndarray, repeats: int) -> list[dict]:
    rows = []
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        optical_flow(frames)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            optical_flow(frames)
            times.append(time.perf_counter() - start)
        rows.append({"threads": threads, "ms_per_pair": round(1e3 * float(np.median(times)) / (len(frames) - 1), 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=8, help="known-flow pairs per case")
    parser.add_argument("--repeats", type=int, default=300, help="timed rounds, one pair each (OpenCV then s2kit)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    all_cases = cases(args.pairs)
    rows = accuracy(all_cases)
    pair = pair_timing(all_cases, args.repeats)
    batched = video_timing(hsr_video(64), max(3, args.repeats // 30))
    report = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "opencv": cv2.__version__,
              "numba": numba.__version__, "accuracy": rows, "pair_one_thread": pair, "video": batched}  # fmt: skip
    if args.json:
        print(json.dumps(report))
        return
    print(f"{report['cpus']} cpus, load average {report['load_average']}, OpenCV {cv2.__version__}, numba {numba.__version__}")
    print(f"{'case':<12} {'EPE zero flow':>13} {'EPE s2kit':>10} {'EPE OpenCV':>11} {'ratio':>6}")
    for row in rows:
        print(f"{row['case']:<12} {row['epe_zero']:>13.3f} {row['epe_ours']:>10.3f} {row['epe_opencv']:>11.3f} {row['ratio']:>6.2f}")
    print(f"one 96x96 pair, one thread: s2kit {pair['ms_ours']:.3f} ms, OpenCV {pair['ms_opencv']:.3f} ms, ratio {pair['ratio']:.2f}")
    for row in batched:
        print(f"64-frame video, {row['threads']} thread(s): {row['ms_per_pair']:.3f} ms per pair")


if __name__ == "__main__":
    main()
