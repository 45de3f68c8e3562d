import Foundation
import Testing
@testable import DTLS
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// aiortc's DTLS transport (`RTCDtlsTransport`, pyOpenSSL + pylibsrtp) over a loopback UDP socket.
/// aiortc's ICE transport is replaced by a stand-in with the three members the DTLS transport
/// uses (`role`, `_send`, `_recv`) on one UDP socket, so the DTLS and SRTP code under test is
/// aiortc's own. The script prints one JSON line per step.
enum AiortcDTLSPeer {
    static let script = #"""
    import asyncio, json, socket, sys
    from aiortc.rtcdtlstransport import (RTCCertificate, RTCDtlsFingerprint, RTCDtlsParameters,
                                         RTCDtlsTransport)

    MATERIAL = {"SRTP_AEAD_AES_256_GCM": 88, "SRTP_AEAD_AES_128_GCM": 56, "SRTP_AES128_CM_SHA1_80": 60}

    def emit(**fields):
        print(json.dumps(fields), flush=True)

    class LoopbackIce:
        """The part of RTCIceTransport that RTCDtlsTransport uses, on one UDP socket."""
        role = "controlled"

        def __init__(self, sock, peer):
            self._sock, self._peer, self._queue = sock, peer, asyncio.Queue()
            asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

        def _readable(self):
            data, _ = self._sock.recvfrom(65536)
            self._queue.put_nowait(data)

        async def _send(self, data):
            self._sock.sendto(data, self._peer)

        async def _recv(self):
            return await self._queue.get()

    async def main():
        role, peer_port, fingerprint, rtp = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        certificate = RTCCertificate.generateCertificate()
        dtls = RTCDtlsTransport(LoopbackIce(sock, ("127.0.0.1", peer_port)), [certificate])
        dtls._set_role(role)
        received = asyncio.get_running_loop().create_future()

        async def on_rtp(data, arrival_time_ms):
            if not received.done():
                received.set_result(bytes(data))

        dtls._handle_rtp_data = on_rtp  # what aiortc's SRTP session decrypted
        ours = next(f for f in certificate.getFingerprints() if f.algorithm == "sha-256")
        emit(event="ready", port=sock.getsockname()[1], fingerprint=ours.value)
        await asyncio.wait_for(
            dtls.start(RTCDtlsParameters(fingerprints=[RTCDtlsFingerprint("sha-256", fingerprint)])), 10)
        if dtls.state != "connected":
            emit(event="failed", state=dtls.state)
            return
        profile = dtls._ssl.get_selected_srtp_profile().decode()
        material = dtls._ssl.export_keying_material(b"EXTRACTOR-dtls_srtp", MATERIAL[profile])
        emit(event="connected", profile=profile, material=material.hex())
        await dtls._send_rtp(bytes.fromhex(rtp))
        data = await asyncio.wait_for(received, 10)
        emit(event="rtp", packet=data.hex())
        await dtls.stop()
        emit(event="stopped")

    asyncio.run(main())
    """#

    /// Why the aiortc peer cannot run here, or nil when python3 can import aiortc.
    static let unavailableReason: String? = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import aiortc.rtcdtlstransport"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        do {
            try process.run()
            process.waitUntilExit()
        } catch {
            return "python3 not found (\(error))"
        }
        return process.terminationStatus == 0 ? nil : "python3 cannot import aiortc (pip install aiortc)"
    }()
}

/// The aiortc script as a child process whose stdout goes to a file the test polls.
final class AiortcProcess {
    let process = Process()
    let directory = NSTemporaryDirectory() + "peerd-aiortc-\(UUID().uuidString)"

    init(arguments: [String]) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let scriptPath = directory + "/dtls_peer.py"
        try AiortcDTLSPeer.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: directory + "/out.log", contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: directory + "/out.log"))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", scriptPath] + arguments
        process.standardOutput = output
        process.standardError = output
        try process.run()
    }

    var output: String { (try? String(contentsOfFile: directory + "/out.log", encoding: .utf8)) ?? "" }

    /// The first JSON line with this `event`, if printed yet.
    func line(_ event: String) -> [String: Any]? {
        for line in output.split(separator: "\n") where line.hasPrefix("{") {
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               object["event"] as? String == event {
                return object
            }
        }
        return nil
    }

    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

@Suite("Interop with aiortc's DTLS transport", .serialized,
       .enabled(if: AiortcDTLSPeer.unavailableReason == nil,
                "SKIPPED: \(AiortcDTLSPeer.unavailableReason ?? "") (aiortc DTLS interop)"))
struct AiortcInteropTests {
    @Test("handshake with aiortc over loopback UDP: same profile and keying material, SRTP both ways, close_notify",
          arguments: [(DTLSRole.client, SRTPProfile.defaultPreference), (.server, SRTPProfile.defaultPreference),
                      (.client, [.aes128CmSha1_80]), (.server, [.aeadAes128Gcm])])
    func handshake(role: DTLSRole, profiles: [SRTPProfile]) throws {
        let socket = try LoopbackUDPSocket()
        let identity = try DTLSCertificate.generate()
        let fromAiortc = rtpPacket(sequence: 4242, ssrc: 0xa10_47c0, payload: Array("aiortc -> peerd".utf8))
        let toAiortc = rtpPacket(sequence: 77, ssrc: 0x9ee7_d000, payload: Array("peerd -> aiortc".utf8))
        let peer = try AiortcProcess(arguments: [role == .client ? "server" : "client", "\(socket.port)",
                                                 identity.fingerprint.hexString, hexString(fromAiortc)])
        defer { peer.stop() }

        let start = MonotonicTime.now()
        var ready: [String: Any]?
        while ready == nil && MonotonicTime.now() - start < .seconds(15) {
            ready = peer.line("ready")
            if ready == nil { usleep(20_000) }
        }
        let announced = try #require(ready, "aiortc did not start: \(peer.output)")
        let port = try #require((announced["port"] as? Int).flatMap { UInt16(exactly: $0) })
        let theirPrint = try CertificateFingerprint(sdpValue: "sha-256 " + (announced["fingerprint"] as? String ?? ""))

        let endpoint = try DTLSEndpoint(role: role, certificate: identity, remoteFingerprints: [theirPrint], srtpProfiles: profiles)
        endpoint.start(now: .now())
        var connected: (SRTPProfile, SRTPKeyingMaterial, CertificateFingerprint)?
        var session: SRTPSession?
        var receivedRTP: [UInt8]?
        var closed = false
        var lastSRTPSent: MonotonicTime?
        while MonotonicTime.now() - start < .seconds(20) {
            while let datagram = endpoint.pollTransmit() { socket.send(datagram, to: port) }
            while let event = endpoint.pollEvent() {
                switch event {
                case .connected(let profile, let keys, let print):
                    connected = (profile, keys, print)
                    session = try SRTPSession(profile: profile, keys: keys)
                case .closed:
                    closed = true
                case .failed(let error):
                    Issue.record("DTLS failed: \(error); aiortc said: \(peer.output)")
                    return
                case .applicationData:
                    break
                }
            }
            if closed && receivedRTP != nil && peer.line("stopped") != nil { break }
            // Once aiortc reports connected, send it one SRTP packet (again every 200 ms until it
            // reports what it decrypted).
            if let session, peer.line("connected") != nil, peer.line("rtp") == nil,
               lastSRTPSent.map({ MonotonicTime.now() - $0 > .milliseconds(200) }) ?? true {
                var packet = toAiortc
                try session.protectRTP(&packet)
                socket.send(packet, to: port)
                lastSRTPSent = .now()
            }
            if let received = socket.receive(timeoutMilliseconds: 10) {
                switch PacketClass.classify(received.bytes) {
                case .dtls:
                    endpoint.handleDatagram(received.bytes, now: .now())
                case .rtpOrRTCP:
                    if let session {
                        var packet = received.bytes
                        try session.unprotectRTP(&packet)
                        receivedRTP = packet
                    }
                default:
                    Issue.record("unexpected datagram \(hexString(received.bytes))")
                }
            }
            let now = MonotonicTime.now()
            if let deadline = endpoint.nextTimeout, deadline <= now { endpoint.handleTimeout(now: now) }
        }

        let (profile, keys, print) = try #require(connected, "not connected; aiortc said: \(peer.output)")
        #expect(profiles.contains(profile))
        #expect(print == theirPrint)
        let aiortcConnected = try #require(peer.line("connected"), "aiortc said: \(peer.output)")
        #expect(aiortcConnected["profile"] as? String == profile.openSSLName)
        #expect(aiortcConnected["material"] as? String == hexString(exportedMaterial(keys, role: role)),
                "exported keying material differs")
        // aiortc's SRTP to ours and ours to aiortc's.
        #expect(receivedRTP == fromAiortc)
        #expect(peer.line("rtp")?["packet"] as? String == hexString(toAiortc), "aiortc said: \(peer.output)")
        // aiortc's stop() sends close_notify.
        #expect(closed, "no close_notify seen; aiortc said: \(peer.output)")
        #expect(endpoint.state == .closed)
    }
}
