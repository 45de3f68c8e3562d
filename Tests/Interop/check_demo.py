#!/usr/bin/env python3
"""The README's main job, checked: `peerd demo` with its headless Chromium participant.

Runs `peerd demo --port 0 --seconds 8 --record DIR` and checks what it prints and writes:
- exactly one participant row in the table (the Chromium page), in which peerd heard ~660 Hz for at
  least 4 s and the browser heard peerd at ~440 Hz;
- the recording named in that row exists and is an Ogg stream;
- events.jsonl has the participant's join, connected, first-audio and leave, in that order;
- stats.json has the participant's closed connection with packets received and its SRTP profile;
- nothing is logged at error level or above (the demo logs warnings and above).

Usage: Tests/Interop/check_demo.py [--peerd PATH] [--keep]
Without Chromium (/usr/bin/chromium) it prints why and exits 0: the demo then has no participant.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))


def fail(message, output=""):
    print(f"demo check: FAIL: {message}")
    if output:
        print(output)
    sys.exit(1)


def table_rows(output):
    """The rows between the table's dashed line and the blank line after it."""
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("-------------------"):
            rows = []
            for row in lines[index + 1:]:
                if not row.strip():
                    break
                rows.append(row)
            return rows
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--peerd", default=os.environ.get("PEERD", os.path.join(REPO, ".build/debug/peerd")))
    parser.add_argument("--keep", action="store_true", help="keep the recording directory")
    args = parser.parse_args()
    if not any(os.access(path, os.X_OK) for path in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")):
        print("demo check: SKIPPED: Chromium is not installed (apt-get install chromium), so the demo has no participant to check")
        return
    directory = tempfile.mkdtemp(prefix="peerd-demo-check-")
    try:
        try:
            run = subprocess.run([args.peerd, "demo", "--port", "0", "--seconds", "8", "--record", directory],
                                 capture_output=True, text=True, timeout=90)
        except subprocess.TimeoutExpired as error:
            fail("peerd demo did not end within 90 s", (error.stdout or b"").decode() if isinstance(error.stdout, bytes) else (error.stdout or ""))
        output = run.stdout
        if run.returncode != 0:
            fail(f"peerd demo exited with {run.returncode}", output + run.stderr[-2000:])
        # A demo that worked logs no errors (it logs at warning level and above): the server's
        # shutdown once logged two after about half the runs (a race, so this catches it only then).
        # (swift-log's StreamLogHandler: "<timestamp> <level> <label>: <message>".)
        errors = [line for line in run.stderr.splitlines() if re.match(r"\S+ (error|critical) ", line)]
        if errors:
            fail("peerd demo logged errors", "\n".join(errors[:10]))
        rows = table_rows(output)
        if rows is None:
            fail("no table in the demo's output", output)
        if len(rows) != 1:
            fail(f"expected one participant row (the Chromium page), found {len(rows)}", output)
        row = rows[0]
        participant = row.split()[0]
        heard = re.search(r"\s(\d+) Hz, (\d+\.\d) s\s", row)
        if not heard:
            fail("peerd heard nothing from the Chromium page", output)
        frequency, seconds = int(heard.group(1)), float(heard.group(2))
        if not 650 <= frequency <= 670 or seconds < 4.0:
            fail(f"peerd heard {frequency} Hz for {seconds} s (expected ~660 Hz for at least 4 s)", output)
        browser = re.search(r"(\d+) Hz\s*$", row)
        if not browser or not 430 <= int(browser.group(1)) <= 450:
            fail("the Chromium page did not hear peerd's 440 Hz", output)
        recording = os.path.join(directory, participant + ".ogg")
        if recording not in row or not os.path.isfile(recording):
            fail(f"the row does not name an existing {recording}", output)
        with open(recording, "rb") as file:
            if file.read(4) != b"OggS":
                fail(f"{recording} is not an Ogg stream")

        events = [json.loads(line) for line in open(os.path.join(directory, "events.jsonl")) if line.strip()]
        names = [event["event"] for event in events if event.get("participant") == participant]
        expected = ["join", "connected", "first-audio", "leave"]
        positions = [names.index(name) if name in names else -1 for name in expected]
        if -1 in positions or positions != sorted(positions):
            fail(f"events.jsonl for {participant}: {names} (expected {expected} in that order)")

        stats = json.load(open(os.path.join(directory, "stats.json")))
        closed = [entry for entry in stats.get("closedConnections", []) if entry.get("participant") == participant]
        if len(closed) != 1:
            fail(f"stats.json has {len(closed)} closed connections of {participant} (expected 1)")
        received = closed[0].get("inboundRtp", {}).get("packetsReceived", 0)
        if received < 200 or not closed[0].get("srtpProfile"):
            fail(f"stats.json: {received} packets received, SRTP profile {closed[0].get('srtpProfile')!r}")

        print(f"demo check: {participant}: peerd heard {frequency} Hz for {seconds} s, the page heard peerd at "
              f"{browser.group(1)} Hz; {os.path.basename(recording)} recorded, {received} packets, "
              f"SRTP {closed[0]['srtpProfile']}, events and stats.json complete")
        print("demo check: PASS")
    finally:
        if args.keep:
            print(f"demo check: kept {directory}")
        else:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
