#!/usr/bin/env python3
"""First audio after a Chromium participant joins (issue 7): peerd next to Chromium, same room, same run.

Starts `peerd serve` on 127.0.0.1, a peerd bot (`peerd join --tone 440 --record DIR --loopback`),
a headless Chromium participant A (660 Hz fake microphone), then, RUNS times, a new headless
Chromium participant B (880 Hz) that joins, is measured, and is killed. For each B it reports,
from B's join (the page's `status.joinedAt`, taken when it sends `присоединиться-к-комнате`):

  peerd hears B     peerd's events.jsonl `first-audio` for B (first SRTP packet decrypted)
  A hears B         Chromium <-> Chromium: A's page `firstAudioAt[B]` (B's remote track unmutes,
                    i.e. its first RTP packet arrived)
  B hears peerd     B's page `firstAudioAt[peerd]`
  B hears A         B's page `firstAudioAt[A]`

All times are wallclock on one machine (Date.now() in the pages, ISO 8601 in events.jsonl).
Pages report their status to the room server (`POST /report/NAME`, read back with GET).

Usage: Benchmarks/peerd-load/first_audio.py [--peerd PATH] [--runs 5] [--trickle on|off]
"""
import argparse
import datetime
import json
import math
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tone_wav(path: str, hz: float, seconds: int = 30) -> None:
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        frames = bytearray()
        for i in range(48000 * seconds):
            frames += struct.pack("<h", int(0.4 * 32767 * math.sin(2 * math.pi * hz * i / 48000)))
        w.writeframes(bytes(frames))


def get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return json.loads(r.read().decode())
    except Exception:
        return None


def find_chromium() -> str:
    for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if os.access(path, os.X_OK):
            return path
    sys.exit("Chromium is not installed (apt-get install chromium)")


def start_chromium(binary: str, url: str, wav: str, workdir: str, name: str) -> subprocess.Popen:
    profile = os.path.join(workdir, "profile-" + name)
    os.makedirs(profile, exist_ok=True)
    log = open(os.path.join(workdir, name + ".log"), "w")
    return subprocess.Popen([
        binary, "--headless=new", "--no-sandbox", "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream", f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
        f"--user-data-dir={profile}", "--disable-gpu", "--no-first-run", "--mute-audio", url,
    ], stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def wait_for(what: str, check, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


def peerd_events(directory: str) -> list:
    path = os.path.join(directory, "events.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def epoch_ms(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peerd", default=os.path.join(REPO, ".build-rel/release/peerd"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trickle", default="on", choices=["on", "off"])
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    if not os.access(args.peerd, os.X_OK):
        sys.exit(f"peerd not found at {args.peerd} (swift build -c release --product peerd --scratch-path .build-rel)")
    chromium = find_chromium()
    work = tempfile.mkdtemp(prefix="peerd-first-audio-")
    record = os.path.join(work, "rec")
    os.makedirs(record)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    page = f"{base}/?autojoin=1&processing=0&room=general" + ("" if args.trickle == "on" else "&trickle=0")
    processes = []
    try:
        server = subprocess.Popen([args.peerd, "serve", "--port", str(port)], stdout=open(os.path.join(work, "serve.log"), "w"),
                                  stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(server)
        wait_for("room server", lambda: get_json(base + "/health") is not None, 15)
        bot = subprocess.Popen([args.peerd, "join", f"ws://127.0.0.1:{port}/ws", "--room", "general", "--id", "peerd-bot",
                                "--tone", "440", "--record", record, "--loopback", "--trickle", args.trickle, "--no-status"],
                               stdout=open(os.path.join(work, "bot.log"), "w"), stderr=subprocess.STDOUT, start_new_session=True)
        processes.append(bot)
        time.sleep(1.0)
        wav_a, wav_b = os.path.join(work, "a.wav"), os.path.join(work, "b.wav")
        tone_wav(wav_a, 660)
        tone_wav(wav_b, 880)
        chrome_a = start_chromium(chromium, page + "&name=chrome-a", wav_a, work, "chrome-a")
        processes.append(chrome_a)
        report_a = wait_for("A hears peerd", lambda: (r := get_json(base + "/report/chrome-a")) and
                            (r.get("firstAudioAt") or {}).get("peerd-bot") and r, 30)
        a_id = report_a["id"]
        rows = []
        for run in range(args.runs):
            name = f"chrome-b{run}"
            chrome_b = start_chromium(chromium, page + f"&name={name}", wav_b, work, name)
            try:
                report_b = wait_for(f"{name} hears peerd and A", lambda: (r := get_json(f"{base}/report/{name}")) and
                                    r.get("joinedAt") and len(r.get("firstAudioAt") or {}) >= 2 and r, 30)
                b_id, joined = report_b["id"], report_b["joinedAt"]
                a_hears = wait_for("A hears B", lambda: ((get_json(base + "/report/chrome-a") or {}).get("firstAudioAt") or {}).get(b_id), 15)
                peerd_first = wait_for("peerd hears B", lambda: next((epoch_ms(e["time"]) for e in peerd_events(record)
                                                                      if e.get("event") == "first-audio" and e.get("participant") == b_id), None), 15)
                row = {"peerd hears B": peerd_first - joined, "A hears B": a_hears - joined,
                       "B hears peerd": report_b["firstAudioAt"]["peerd-bot"] - joined,
                       "B hears A": report_b["firstAudioAt"][a_id] - joined}
                rows.append(row)
                print(f"run {run + 1}: " + ", ".join(f"{k} {v:.0f} ms" for k, v in row.items()), flush=True)
            except TimeoutError as e:
                print(f"run {run + 1}: timed out waiting for {e}", flush=True)
            finally:
                stop(chrome_b)
            time.sleep(2.0)  # B's WebSocket closes; the room sees it leave
        if not rows:
            sys.exit("no run completed")
        print()
        print(f"first audio after a Chromium participant B joins (ms from B's join), {len(rows)} runs, trickle {args.trickle}, loopback:")
        print("| who hears whom | median | min | max |")
        print("|---|---:|---:|---:|")
        for key in rows[0]:
            values = [r[key] for r in rows]
            print(f"| {key} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |")
        with open("/proc/loadavg") as f:
            print("load average:", " ".join(f.read().split()[:3]))
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        if args.keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
