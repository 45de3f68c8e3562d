#!/usr/bin/env python3
"""A room participant built on aiortc, behaving like the browser client.

It joins a voice room over the room server's WebSocket (Cyrillic JSON protocol,
see /work/shared/room-protocol.md), offers to every participant it has no
connection with on each `участники-комнаты-обновлены`, answers offers, resolves
glare (the higher id keeps its offer), sends a sine tone and measures the
dominant frequency heard from every remote participant.

After --duration seconds it prints one JSON line on stdout:
  {"heard": {peer_id: dominant_hz}, "connected": [peer_id, ...],
   "first_audio_s": {peer_id: seconds from the peer appearing in the room (or
                     signalling us) to its first audible frame},
   "audio_s": {peer_id: seconds of audio received},
   "remote_inbound": {peer_id: {"packets_lost", "fraction_lost", "jitter",
                      "round_trip_time"}: what the peer's RTCP report blocks said
                      about our audio (aiortc's remote-inbound-rtp; the round-trip
                      time is null until a block's LSR/DLSR answered our SR)}}
and exits 0. Diagnostics go to stderr.

Requires: pip install aiortc websockets (numpy and av come with aiortc).
"""

import argparse
import asyncio
import fractions
import json
import logging
import math
import sys
import time
import uuid
from datetime import datetime, timezone

import numpy as np
import websockets
from av import AudioFrame

import aioice.ice
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import candidate_from_sdp

SAMPLE_RATE = 48000
FRAME_SAMPLES = 960  # 20 ms

log = logging.getLogger("aiortc-participant")


def rfc3339_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SineTrack(MediaStreamTrack):
    """48 kHz mono s16 sine, 20 ms frames, paced in real time."""

    kind = "audio"

    def __init__(self, frequency: float, amplitude: float = 0.3):
        super().__init__()
        self.frequency = frequency
        self.amplitude = amplitude
        self._pts = 0
        self._start = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self._pts / SAMPLE_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        n = np.arange(self._pts, self._pts + FRAME_SAMPLES)
        samples = (self.amplitude * 32767 * np.sin(2 * math.pi * self.frequency * n / SAMPLE_RATE)).astype(np.int16)
        frame = AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts += FRAME_SAMPLES
        return frame


def frame_to_mono(frame: AudioFrame) -> np.ndarray:
    """Mono float samples in [-1, 1] from a decoded frame (aiortc gives s16 packed stereo)."""
    arr = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        mono = arr.astype(np.float64).mean(axis=0)
    else:
        mono = arr.reshape(-1, channels).astype(np.float64).mean(axis=1)
    if frame.format.name.startswith("s16"):
        mono /= 32768.0
    elif frame.format.name.startswith("s32"):
        mono /= 2147483648.0
    return mono


def dominant_hz(samples: np.ndarray, rate: int) -> float:
    if len(samples) < 1024:
        return 0.0
    windowed = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(windowed))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    # Parabolic interpolation for a sub-bin estimate.
    if 0 < k < len(spectrum) - 1:
        a, b, c = spectrum[k - 1], spectrum[k], spectrum[k + 1]
        denom = a - 2 * b + c
        if denom != 0:
            k = k + 0.5 * (a - c) / denom
    return float(k * rate / len(samples))


def use_mono_opus_encoder():
    """Makes aiortc encode mono Opus (TOC stereo bit clear) instead of its default stereo."""
    from av import AudioResampler
    from aiortc.codecs import opus

    def mono_init(self):
        self.first_packet_pts = None
        self.codec = opus.CodecContext.create("libopus", "w")
        self.codec.bit_rate = 48000
        self.codec.format = "s16"
        self.codec.layout = "mono"
        self.codec.options = {"application": "voip"}
        self.codec.sample_rate = opus.SAMPLE_RATE
        self.codec.time_base = opus.TIME_BASE
        self.resampler = AudioResampler(format="s16", layout="mono", rate=opus.SAMPLE_RATE,
                                        frame_size=opus.SAMPLES_PER_FRAME)

    opus.OpusEncoder.__init__ = mono_init


class Participant:
    def __init__(self, args):
        self.args = args
        self.my_id = args.id
        self.room = args.room
        self.ws = None
        self.pcs: dict[str, RTCPeerConnection] = {}
        self.pending_candidates: dict[str, list] = {}
        self.samples: dict[str, list[np.ndarray]] = {}
        self.sample_rate: dict[str, int] = {}
        self.first_audio: dict[str, float] = {}
        self.first_seen: dict[str, float] = {}
        self.connected: set[str] = set()
        self.remote_inbound: dict[str, dict] = {}
        self.join_time = None
        self.tasks: set[asyncio.Task] = set()

    async def send(self, message: dict):
        await self.ws.send(json.dumps(message, ensure_ascii=False))

    async def signal(self, to: str, data: dict):
        await self.send({"тип": "webrtc-signal", "от": self.my_id, "к": to, "комната": self.room, "данные": data})

    def new_pc(self, peer: str) -> RTCPeerConnection:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pcs[peer] = pc
        self.pending_candidates[peer] = []
        pc.addTrack(SineTrack(self.args.tone))

        @pc.on("connectionstatechange")
        async def on_state():
            log.info("pc %s: connection state %s", peer, pc.connectionState)
            if pc.connectionState == "connected":
                self.connected.add(peer)

        @pc.on("track")
        def on_track(track):
            log.info("pc %s: remote %s track", peer, track.kind)
            if track.kind == "audio":
                task = asyncio.ensure_future(self.consume(peer, track))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

        return pc

    async def consume(self, peer: str, track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            mono = frame_to_mono(frame)
            self.sample_rate[peer] = frame.sample_rate
            self.samples.setdefault(peer, []).append(mono)
            if peer not in self.first_audio and np.sqrt(np.mean(mono ** 2)) > 0.01:
                self.first_audio[peer] = time.monotonic() - self.first_seen.get(peer, self.join_time)
                log.info("first audio from %s %.3f s after it appeared", peer, self.first_audio[peer])

    async def close_pc(self, peer: str):
        pc = self.pcs.pop(peer, None)
        self.pending_candidates.pop(peer, None)
        if pc is not None:
            await pc.close()

    async def offer_to(self, peer: str):
        pc = self.new_pc(peer)
        offer = await pc.createOffer()
        await pc.setLocalDescription(offer)  # aiortc gathers every candidate here
        if self.pcs.get(peer) is not pc:
            return
        log.info("offer -> %s", peer)
        await self.signal(peer, {"type": "offer", "sdp": pc.localDescription.sdp})

    async def on_participants(self, participants: list):
        ids = [p.get("id") for p in participants if isinstance(p, dict)]
        for peer in list(self.pcs):
            if peer not in ids:
                log.info("%s left", peer)
                await self.close_pc(peer)
        for peer in ids:
            if peer and peer != self.my_id:
                self.first_seen.setdefault(peer, time.monotonic())
            if peer and peer != self.my_id and peer not in self.pcs and not self.args.no_offer:
                await self.offer_to(peer)

    async def on_signal(self, peer: str, data: dict):
        self.first_seen.setdefault(peer, time.monotonic())
        kind = data.get("type")
        if kind == "offer":
            pc = self.pcs.get(peer)
            if pc is not None and pc.signalingState == "have-local-offer":
                if self.my_id > peer:
                    log.info("glare with %s: keeping our offer, ignoring theirs", peer)
                    return
                log.info("glare with %s: dropping our offer, answering theirs", peer)
            if pc is not None:
                await self.close_pc(peer)
            pc = self.new_pc(peer)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="offer"))
            await self.flush_candidates(peer)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
            if self.pcs.get(peer) is not pc:
                return
            log.info("answer -> %s", peer)
            await self.signal(peer, {"type": "answer", "sdp": pc.localDescription.sdp})
        elif kind == "answer":
            pc = self.pcs.get(peer)
            if pc is None or pc.signalingState != "have-local-offer":
                log.info("ignoring answer from %s (state %s)", peer, pc.signalingState if pc else None)
                return
            await pc.setRemoteDescription(RTCSessionDescription(sdp=data["sdp"], type="answer"))
            await self.flush_candidates(peer)
        elif kind == "candidate":
            c = data.get("candidate") or {}
            self.pending_candidates.setdefault(peer, []).append(c)
            await self.flush_candidates(peer)
        else:
            log.info("ignoring signal %r from %s", kind, peer)

    async def flush_candidates(self, peer: str):
        pc = self.pcs.get(peer)
        if pc is None or pc.remoteDescription is None:
            return
        pending, self.pending_candidates[peer] = self.pending_candidates.get(peer, []), []
        for c in pending:
            line = c.get("candidate") or ""
            if line.startswith("a="):
                line = line[2:]
            if line.startswith("candidate:"):
                line = line[len("candidate:"):]
            if not line:
                await pc.addIceCandidate(None)
                continue
            try:
                cand = candidate_from_sdp(line)
            except Exception as e:  # malformed candidate from the peer
                log.warning("bad candidate from %s: %r (%s)", peer, line, e)
                continue
            cand.sdpMid = c.get("sdpMid")
            cand.sdpMLineIndex = c.get("sdpMLineIndex")
            if cand.sdpMid is None and cand.sdpMLineIndex is None:
                cand.sdpMLineIndex = 0
            await pc.addIceCandidate(cand)

    async def run(self):
        self.join_time = time.monotonic()
        async with websockets.connect(self.args.url, max_size=None) as ws:
            self.ws = ws
            await self.send({
                "тип": "присоединиться",
                "пользователь": {
                    "id": self.my_id,
                    "имя": self.args.name,
                    "телеграм_id": None,
                    "аватар": None,
                    "подключен": True,
                    "в_комнате": None,
                    "микрофон_включен": True,
                    "говорит": False,
                    "последняя_активность": rfc3339_now(),
                },
            })
            await self.send({"тип": "присоединиться-к-комнате", "комната_id": self.room,
                             "пользователь_id": self.my_id, "пароль": None})
            try:
                await asyncio.wait_for(self.loop(), timeout=self.args.duration)
            except asyncio.TimeoutError:
                pass
            try:
                await self.send({"тип": "покинуть-комнату", "комната_id": self.room, "пользователь_id": self.my_id})
            except Exception:
                pass
        for peer, pc in list(self.pcs.items()):
            try:
                report = await pc.getStats()
            except Exception as error:
                log.warning("getStats for %s failed: %s", peer, error)
                continue
            for stats in report.values():
                if getattr(stats, "type", None) == "remote-inbound-rtp" and stats.kind == "audio":
                    self.remote_inbound[peer] = {
                        "packets_lost": stats.packetsLost, "fraction_lost": stats.fractionLost,
                        "jitter": stats.jitter, "round_trip_time": stats.roundTripTime,
                    }
        for peer in list(self.pcs):
            await self.close_pc(peer)

    async def loop(self):
        async for raw in self.ws:
            try:
                msg = json.loads(raw)
            except ValueError:
                continue
            if not isinstance(msg, dict):
                continue
            kind = msg.get("тип")
            if kind == "участники-комнаты-обновлены" and msg.get("комната_id") == self.room:
                await self.on_participants(msg.get("участники") or [])
            elif kind == "webrtc-signal" and msg.get("к") == self.my_id:
                data = msg.get("данные")
                if isinstance(data, str):
                    data = json.loads(data)
                if isinstance(data, dict) and msg.get("от"):
                    await self.on_signal(msg["от"], data)
            elif kind == "покинул-комнату" and msg.get("комната_id") == self.room:
                await self.close_pc(msg.get("пользователь_id"))
            elif kind == "ошибка":
                log.warning("server error: %s", msg.get("сообщение"))

    def report(self) -> dict:
        heard, audio_s = {}, {}
        for peer, chunks in self.samples.items():
            rate = self.sample_rate.get(peer, SAMPLE_RATE)
            samples = np.concatenate(chunks) if chunks else np.zeros(0)
            audio_s[peer] = round(len(samples) / rate, 2)
            # Skip the first 0.5 s (codec warm-up) when there is enough audio.
            tail = samples[rate // 2:] if len(samples) > rate else samples
            heard[peer] = round(dominant_hz(tail, rate), 1)
        return {
            "heard": heard,
            "connected": sorted(self.connected),
            "first_audio_s": {k: round(v, 3) for k, v in self.first_audio.items()},
            "audio_s": audio_s,
            "remote_inbound": self.remote_inbound,
        }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="room server WebSocket URL, e.g. ws://127.0.0.1:8080/ws")
    parser.add_argument("--room", default="general")
    parser.add_argument("--id", default=f"aiortc-{uuid.uuid4().hex[:8]}")
    parser.add_argument("--name", default="aiortc")
    parser.add_argument("--tone", type=float, default=660.0)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--host-address", action="append", default=None,
                        help="local ICE host address(es) to use (default: 127.0.0.1 only); "
                             "'auto' keeps aioice's own list (which skips loopback)")
    parser.add_argument("--no-offer", action="store_true",
                        help="never offer, only answer (makes the other side offer)")
    parser.add_argument("--opus-mono", action="store_true",
                        help="encode mono Opus like Chrome does (aiortc's encoder is stereo by default)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if not args.verbose:
        for noisy in ("aioice", "aiortc", "websockets"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

    hosts = args.host_address or ["127.0.0.1"]
    if hosts != ["auto"]:
        # aioice skips 127.0.0.1 when gathering host candidates; on a loopback-only
        # test setup we hand it the addresses to use instead.
        aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(hosts)

    if args.opus_mono:
        use_mono_opus_encoder()

    participant = Participant(args)
    try:
        asyncio.run(participant.run())
    except KeyboardInterrupt:
        pass
    print(json.dumps(participant.report(), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
