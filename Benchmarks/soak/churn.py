#!/usr/bin/env python3
"""Churn soak: a recording peerd bot in a room that participants keep joining and leaving.

What a bot that records a room for days goes through: participants come, talk, and go, some by
leaving and some by dying (their process killed, as a closed laptop or a crashed tab). After every
cycle this checks the recorder's process from /proc -- resident memory, open file descriptors,
threads -- and at the end every recording: one finalized file per participant (Ogg Opus: an EOS page;
`--format wav`, decoded: RIFF and data sizes that match the file), with about the time the participant talked, of the participant's own tone (dominant frequency).

Every participant is a real `peerd join` process with its own tone; the participants of a cycle
also connect to each other (a full mesh, as browsers do). The recorder is `peerd join --record`,
optionally on one shared UDP port (`--shared-port`, as `peerd join --port`). With
`--server-restart-every N` the room server is restarted (SIGTERM, then started again on its port)
before every Nth cycle, as a redeploy would: the recorder must reconnect and rejoin each time.

Fails (exit 1) when a recording is missing, not finalized, too short or of the wrong tone, when the
recorder's descriptors or threads after the last cycle exceed those after the warm-up cycles, when
its memory grows by more than --max-growth-kib per participant after the warm-up, or when it does not
leave within 2 s of SIGTERM, or does not rejoin within 20 s of a server restart.

Usage: Benchmarks/soak/churn.py [--peerd PATH] [--cycles 40] [--parallel 4] [--hold 2]
                                [--kill-every 3] [--warmup 3] [--server-restart-every N] [--format ogg|wav]
                                [--shared-port] [--keep]
Needs: python3 with numpy, opusdec (opus-tools).
"""
import argparse
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

from soakutil import REPO, free_port, proc_figures, wait_or_kill, wait_until



def events(directory):
    path = os.path.join(directory, "events.jsonl")
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                out.append({"event": "unparsable", "line": line})
    return out


def ogg_pages(path):
    """(header_type, granule) of every page; raises ValueError on a broken page."""
    with open(path, "rb") as f:
        data = f.read()
    pages, offset = [], 0
    while offset < len(data):
        if data[offset:offset + 4] != b"OggS" or offset + 27 > len(data):
            raise ValueError(f"no page at byte {offset} of {len(data)}")
        header_type = data[offset + 5]
        granule = struct.unpack_from("<q", data, offset + 6)[0]
        segments = data[offset + 26]
        lacing = data[offset + 27:offset + 27 + segments]
        size = 27 + segments + sum(lacing)
        if offset + size > len(data):
            raise ValueError(f"page at byte {offset} runs past the end")
        pages.append((header_type, granule, data[offset + 27 + segments:offset + size]))
        offset += size
    return pages


def wav_finalized(path):
    """(finalized, seconds): a WAV whose RIFF and data sizes were written at close and match the file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 44 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        return False, 0.0
    if struct.unpack_from("<I", data, 4)[0] != len(data) - 8:
        return False, 0.0
    offset = 12
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if chunk == b"fmt ":
            channels, rate = struct.unpack_from("<HI", data, offset + 10)
        elif chunk == b"data":
            return offset + 8 + size == len(data), size / 2 / channels / rate
        offset += 8 + size + (size & 1)
    return False, 0.0


def dominant_frequency(wav_path):
    with wave.open(wav_path) as w:
        channels, rate = w.getnchannels(), w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels)[:, 0]
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum[1:])) + 1]


def finalized(path):
    """Whether the recording at `path` (.ogg or .wav) has been closed properly."""
    try:
        if path.endswith(".wav"):
            return wav_finalized(path)[0]
        pages = ogg_pages(path)
        return bool(pages) and pages[-1][0] & 0x04 != 0
    except (OSError, ValueError, struct.error):
        return False


def check_recording(path, tone, minimum_seconds, decoded_dir):
    """Returns (ok, description)."""
    if not os.path.exists(path):
        return False, "no file"
    if path.endswith(".wav"):
        ok, seconds = wav_finalized(path)
        if not ok:
            return False, "not finalized (RIFF or data size not written at close)"
        if seconds < minimum_seconds:
            return False, f"{seconds:.2f} s of audio (< {minimum_seconds:.2f})"
        dominant = dominant_frequency(path)
        if abs(dominant - tone) > 15:
            return False, f"{seconds:.2f} s, dominant {dominant:.0f} Hz, expected {tone:.0f} Hz"
        return True, f"{seconds:.2f} s, {dominant:.0f} Hz"
    try:
        pages = ogg_pages(path)
    except ValueError as error:
        return False, f"broken Ogg: {error}"
    if len(pages) < 3 or not pages[0][2].startswith(b"OpusHead"):
        return False, f"{len(pages)} pages, no OpusHead"
    if not pages[-1][0] & 0x04:
        return False, "not finalized (no EOS page)"
    pre_skip = struct.unpack_from("<H", pages[0][2], 10)[0]
    seconds = (pages[-1][1] - pre_skip) / 48000
    if seconds < minimum_seconds:
        return False, f"{seconds:.2f} s of audio (< {minimum_seconds:.2f})"
    wav_path = os.path.join(decoded_dir, os.path.basename(path) + ".wav")
    result = subprocess.run(["opusdec", "--quiet", "--rate", "48000", path, wav_path], capture_output=True)
    if result.returncode != 0:
        return False, f"opusdec failed: {result.stderr.decode(errors='replace').strip()}"
    dominant = dominant_frequency(wav_path)
    if abs(dominant - tone) > 15:
        return False, f"{seconds:.2f} s, dominant {dominant:.0f} Hz, expected {tone:.0f} Hz"
    return True, f"{seconds:.2f} s, {dominant:.0f} Hz"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peerd", default=os.environ.get("PEERD", os.path.join(REPO, ".build/debug/peerd")))
    parser.add_argument("--cycles", type=int, default=40)
    parser.add_argument("--parallel", type=int, default=4, help="participants per cycle")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each participant talks after its audio arrives")
    parser.add_argument("--kill-every", type=int, default=3, help="every Nth participant is killed (SIGKILL) instead of leaving")
    parser.add_argument("--warmup", type=int, default=3, help="cycles before the reference figures are taken")
    parser.add_argument("--max-growth-kib", type=float, default=32.0,
                        help="allowed RSS growth per participant after the warm-up (a connection that is never freed "
                             "holds about 90 KiB: DTLS, SRTP, ICE, recorder buffers)")
    parser.add_argument("--server-restart-every", type=int, default=0,
                        help="restart the room server before every Nth cycle (0: never); the recorder must "
                             "reconnect and rejoin each time")
    parser.add_argument("--format", choices=["ogg", "wav"], default="ogg",
                        help="the recorder's --format: Ogg Opus pass-through or decoded WAV")
    parser.add_argument("--shared-port", action="store_true", help="the recorder uses one UDP port (peerd join --port)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--json", help="write the per-cycle figures here")
    args = parser.parse_args()
    if args.cycles <= args.warmup:
        parser.error("--cycles must exceed --warmup")
    if not os.access(args.peerd, os.X_OK):
        sys.exit(f"FAIL: no peerd binary at {args.peerd} (build it, or pass --peerd)")
    if shutil.which("opusdec") is None:
        sys.exit("FAIL: needs opusdec (apt-get install opus-tools)")

    work = tempfile.mkdtemp(prefix="peerd-churn-")
    record = os.path.join(work, "rec")
    decoded = os.path.join(work, "decoded")
    os.makedirs(decoded)
    logs = os.path.join(work, "logs")
    os.makedirs(logs)
    http_port = free_port()
    url = f"ws://127.0.0.1:{http_port}/ws"
    processes = []

    def launch(name, arguments):
        log = open(os.path.join(logs, name + ".log"), "w")
        process = subprocess.Popen([args.peerd] + arguments, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        processes.append(process)
        return process

    failures = []
    rows = []
    try:
        def start_server(name):
            process = launch(name, ["serve", "--port", str(http_port)])
            if not wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", http_port)) == 0, 10):
                sys.exit(f"FAIL: the room server did not listen; see {logs}/{name}.log")
            return process

        def rejoins():
            with open(os.path.join(logs, "recorder.log"), errors="replace") as f:
                return sum(1 for line in f if "signaling reconnected" in line and "rejoined room" in line)

        server = start_server("serve")
        restarts = 0
        recorder_args = ["join", url, "--room", "general", "--id", "recorder", "--name", "Recorder",
                         "--record", record, "--format", args.format, "--loopback", "--no-status",
                         "--offer-delay", "1"]
        if args.shared_port:
            recorder_args += ["--port", str(free_port(socket.SOCK_DGRAM))]
        recorder = launch("recorder", recorder_args)
        if not wait_until(lambda: os.path.exists(os.path.join(record, "events.jsonl")) or recorder.poll() is not None, 10):
            pass
        time.sleep(0.5)
        if recorder.poll() is not None:
            sys.exit(f"FAIL: the recorder exited ({recorder.returncode}); see {logs}/recorder.log")
        started = proc_figures(recorder.pid)
        print(f"churn: {args.cycles} cycles x {args.parallel} participants, {args.hold:.1f} s of audio each, "
              f"1 in {args.kill_every} killed; recorder{' on one port' if args.shared_port else ''}: "
              f"{started['rss_kib']} KiB, {started['fds']} fds, {started['threads']} threads at start")
        print("| cycle | joined | left | killed | cycle s | recorder RSS KiB | fds | threads | server RSS KiB | server fds |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        participants = []  # (id, tone, killed)
        ordinal = 0
        for cycle in range(1, args.cycles + 1):
            if args.server_restart_every > 0 and cycle > 1 and (cycle - 1) % args.server_restart_every == 0:
                # A redeployed room server: the recorder must notice, reconnect and rejoin, and keep recording.
                server.send_signal(signal.SIGTERM)
                if not wait_or_kill(server):
                    failures.append(f"cycle {cycle}: the room server did not stop within 5 s of SIGTERM")
                restarts += 1
                server = start_server(f"serve-{restarts}")
                if not wait_until(lambda: rejoins() >= restarts, 20):
                    failures.append(f"cycle {cycle}: the recorder did not rejoin within 20 s of server restart {restarts}")
            cycle_start = time.monotonic()
            current = []
            for slot in range(args.parallel):
                ordinal += 1
                ident = f"c{cycle:03d}-p{slot}"
                tone = 300 + 70 * slot + 10 * (cycle % 5)
                killed = args.kill_every > 0 and ordinal % args.kill_every == 0
                process = launch(ident, ["join", url, "--room", "general", "--id", ident, "--name", ident,
                                         "--tone", str(tone), "--loopback", "--no-status", "--offer-delay", "0.3"])
                current.append((ident, tone, killed, process))

            def heard(ident):
                return any(e.get("event") == "first-audio" and e.get("participant") == ident for e in events(record))

            if not wait_until(lambda: all(heard(p[0]) for p in current), 15):
                missing = [p[0] for p in current if not heard(p[0])]
                failures.append(f"cycle {cycle}: no audio from {', '.join(missing)} within 15 s")
            time.sleep(args.hold)
            for ident, tone, killed, process in current:
                process.send_signal(signal.SIGKILL if killed else signal.SIGTERM)
            for ident, tone, killed, process in current:
                if not wait_or_kill(process):
                    failures.append(f"cycle {cycle}: participant {ident} did not exit within 5 s of SIGTERM")
                processes.remove(process)
                participants.append((ident, tone, killed))

            def gone(ident):
                return any(e.get("event") == "leave" and e.get("participant") == ident for e in events(record))

            def done(ident):
                return gone(ident) and finalized(os.path.join(record, f"{ident}.{args.format}"))

            if not wait_until(lambda: all(done(p[0]) for p in current), 15):
                stuck = [p[0] for p in current if not done(p[0])]
                failures.append(f"cycle {cycle}: {', '.join(stuck)} not left and finalized within 15 s")
            time.sleep(0.3)
            if recorder.poll() is not None:
                failures.append(f"cycle {cycle}: the recorder exited ({recorder.returncode})")
                break
            figures = proc_figures(recorder.pid)
            server_figures = proc_figures(server.pid)
            figures.update(cycle=cycle, seconds=round(time.monotonic() - cycle_start, 2),
                           server_rss_kib=server_figures["rss_kib"], server_fds=server_figures["fds"])
            rows.append(figures)
            print(f"| {cycle} | {len(current)} | {sum(1 for p in current if not p[2])} | {sum(1 for p in current if p[2])} | "
                  f"{figures['seconds']:.1f} | {figures['rss_kib']} | {figures['fds']} | {figures['threads']} | "
                  f"{figures['server_rss_kib']} | {figures['server_fds']} |", flush=True)

        # The recorder leaves on SIGTERM within 2 s.
        leave_start = time.monotonic()
        recorder.send_signal(signal.SIGTERM)
        try:
            recorder.wait(timeout=5)
            leave_seconds = time.monotonic() - leave_start
            if leave_seconds > 2.0:
                failures.append(f"the recorder took {leave_seconds:.2f} s to leave on SIGTERM (> 2 s)")
        except subprocess.TimeoutExpired:
            failures.append("the recorder did not exit within 5 s of SIGTERM")
            recorder.kill()
            leave_seconds = None
        else:
            if recorder.returncode != 0:
                failures.append(f"the recorder exited with status {recorder.returncode}")

        # Every participant's recording.
        bad = 0
        for ident, tone, killed in participants:
            ok, description = check_recording(os.path.join(record, f"{ident}.{args.format}"), tone, args.hold * 0.75, decoded)
            if not ok:
                bad += 1
                failures.append(f"{ident} ({'killed' if killed else 'left'}, {tone} Hz): {description}")
        names = sorted(os.listdir(record))
        unexpected = [n for n in names if n not in {"events.jsonl", "stats.json"} and n[:-4] not in {p[0] for p in participants}]
        if unexpected:
            failures.append(f"unexpected files in the record directory: {unexpected}")
        log = events(record)
        joins = sum(1 for e in log if e.get("event") == "join")
        leaves = sum(1 for e in log if e.get("event") == "leave")
        if joins != len(participants) or leaves != len(participants):
            failures.append(f"events.jsonl: {joins} joins and {leaves} leaves for {len(participants)} participants")

        # Resources after the warm-up against the last cycle.
        reference = rows[args.warmup - 1] if len(rows) >= args.warmup else None
        last = rows[-1] if rows else None
        growth = None
        if reference and last and last is not reference:
            # The smallest of the last three figures: the allocator holds on to a few hundred KiB
            # now and then and gives them back a cycle later; what stays is growth.
            settled = min(r["rss_kib"] for r in rows[-3:])
            growth = (settled - reference["rss_kib"]) / (last["cycle"] - reference["cycle"])
            if last["fds"] > reference["fds"]:
                failures.append(f"descriptors grew from {reference['fds']} (cycle {reference['cycle']}) to {last['fds']}")
            if last["server_fds"] > reference["server_fds"]:
                failures.append(f"the room server's descriptors grew from {reference['server_fds']} to {last['server_fds']}")
            # Swift's cooperative pool starts threads as work comes, up to one per core: that is no
            # leak. Leaked threads grow with the cycles: none in the second half, never past the pool.
            middle = rows[(rows.index(reference) + len(rows) - 1) // 2]
            if last["threads"] > reference["threads"] + (os.cpu_count() or 1):
                failures.append(f"threads grew from {reference['threads']} (cycle {reference['cycle']}) to {last['threads']}")
            elif last["threads"] > middle["threads"]:
                failures.append(f"threads grew from {middle['threads']} (cycle {middle['cycle']}) to {last['threads']}")
            if growth / args.parallel > args.max_growth_kib:
                failures.append(f"RSS grew {growth / args.parallel:.1f} KiB per participant after the warm-up "
                                f"(> {args.max_growth_kib})")
        memory = (f"recorder RSS {reference['rss_kib']} KiB after cycle {reference['cycle']} -> {settled} KiB "
                  f"after cycle {last['cycle']} ({growth:+.1f} KiB per cycle, {growth / args.parallel:+.1f} per participant)") if growth is not None else "no memory figures"
        print(f"churn: {len(participants)} participants ({sum(1 for p in participants if p[2])} killed), "
              f"{len(participants) - bad} recordings finalized with their tone and duration; {memory}")
        if leave_seconds is not None:
            print(f"churn: the recorder left on SIGTERM in {leave_seconds:.2f} s")
        if restarts:
            print(f"churn: the room server restarted {restarts} times; the recorder rejoined {rejoins()} times")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rows": rows, "started": started, "failures": failures, "growth_kib_per_cycle": growth}, f, indent=1)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        if args.keep or failures:
            print(f"churn: files kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    for failure in failures:
        print("FAIL:", failure)
    print("churn: PASS" if not failures else f"churn: FAILED ({len(failures)} problems)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
