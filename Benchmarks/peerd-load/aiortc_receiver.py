#!/usr/bin/env python3
"""aiortc as the receiving side of peerd-load (issue 7: the side-by-side ratio to aiortc).

Speaks peerd-load's line protocol on stdin/stdout (one JSON object per line), like
`peerd-load receive`:
  in:  {"op":"offer","id":N,"sdp":...}  {"op":"mark"}  {"op":"counts"}  {"op":"quit"}
  out: {"op":"ready","rss":..}  {"op":"answer","id":N,"sdp":..}  {"op":"error","id":N,"message":..}
       {"op":"mark","cpuLoopNs":..,"cpuProcessNs":..,"rss":..,"packets":..,"connected":..}
       {"op":"counts","perStream":{"N":packets}}  {"op":"bye","files":..,"bytes":..}

Each offer gets its own RTCPeerConnection (ICE host candidates on 127.0.0.1 only, as the
sending peers are there) and a MediaRecorder writing DIR/stream-N.wav (aiortc decodes every
packet; it has no pass-through recording), or a MediaBlackhole with --blackhole (decodes,
writes nothing). Packet counts come from getStats() inbound-rtp packetsReceived.

Run by `peerd-load compare` / `peerd-load run --receiver aiortc`; not meant to be run by hand.
"""
import argparse
import asyncio
import json
import os
import sys
import time

import aioice.ice

# aioice skips 127.0.0.1 when gathering host candidates; the senders are on loopback only.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]

from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaBlackhole, MediaRecorder  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


class Receiver:
    def __init__(self, directory: str, blackhole: bool):
        self.directory = directory
        self.blackhole = blackhole
        self.pcs: dict[int, RTCPeerConnection] = {}
        self.sinks: dict[int, object] = {}
        self.connected = 0

    async def offer(self, ident: int, sdp: str) -> None:
        try:
            pc = RTCPeerConnection()
            self.pcs[ident] = pc
            if self.blackhole:
                sink = MediaBlackhole()
            else:
                sink = MediaRecorder(os.path.join(self.directory, f"stream-{ident}.wav"))
            self.sinks[ident] = sink

            @pc.on("track")
            def on_track(track):
                sink.addTrack(track)

            @pc.on("connectionstatechange")
            def on_state():
                if pc.connectionState == "connected":
                    self.connected += 1

            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)  # gathers every candidate (full SDP)
            await sink.start()
            send({"op": "answer", "id": ident, "sdp": pc.localDescription.sdp})
        except Exception as e:  # reported to the sender, which counts the connection as failed
            send({"op": "error", "id": ident, "message": repr(e)})

    async def packet_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for ident, pc in list(self.pcs.items()):
            total = 0
            try:
                report = await pc.getStats()
                for stats in report.values():
                    if getattr(stats, "type", "") == "inbound-rtp":
                        total += stats.packetsReceived
            except Exception:
                pass
            counts[str(ident)] = total
        return counts

    async def mark(self, first: bool) -> None:
        # CPU is read on the window's outer side of getStats so that neither mark's
        # getStats work lands inside the measured window.
        if first:
            counts = await self.packet_counts()
            cpu_thread, cpu_process = time.thread_time_ns(), time.process_time_ns()
        else:
            cpu_thread, cpu_process = time.thread_time_ns(), time.process_time_ns()
            counts = await self.packet_counts()
        send({"op": "mark", "cpuLoopNs": cpu_thread, "cpuProcessNs": cpu_process, "rss": rss_bytes(),
              "packets": sum(counts.values()), "connected": self.connected})

    async def quit(self) -> None:
        for sink in self.sinks.values():
            try:
                await sink.stop()
            except Exception:
                pass
        for pc in self.pcs.values():
            await pc.close()
        files, size = 0, 0
        for name in os.listdir(self.directory):
            files += 1
            size += os.path.getsize(os.path.join(self.directory, name))
        send({"op": "bye", "files": files, "bytes": size})


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True, help="where the recordings go")
    parser.add_argument("--blackhole", action="store_true", help="consume tracks without recording")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    receiver = Receiver(args.dir, args.blackhole)

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    send({"op": "ready", "rss": rss_bytes()})
    marks = 0
    tasks = set()
    while True:
        line = await reader.readline()
        if not line:
            break
        try:
            message = json.loads(line)
        except ValueError:
            continue
        op = message.get("op")
        if op == "offer":
            task = asyncio.ensure_future(receiver.offer(message["id"], message["sdp"]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif op == "mark":
            await receiver.mark(first=marks % 2 == 0)
            marks += 1
        elif op == "counts":
            send({"op": "counts", "perStream": await receiver.packet_counts()})
        elif op == "quit":
            break
    await receiver.quit()


if __name__ == "__main__":
    asyncio.run(main())
