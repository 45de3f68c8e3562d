import Foundation
import Testing
@testable import Signaling

/// Parses a JSON text into `JSONValue` for key-level comparisons.
func json(_ text: String) throws -> JSONValue {
    try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
}

let sampleTime = Timestamp(rfc3339: "2024-05-01T12:30:00.123Z")!

func sampleUser(_ id: String, name: String? = nil) -> Participant {
    Participant(id: id, name: name ?? "Имя \(id)", lastActivity: sampleTime)
}

@Suite("Message coding")
struct MessageCodingTests {
    static let allClient: [ClientMessage] = [
        .register(Participant(id: "u1", name: "Аня", telegramID: 123456789, avatar: "a.png", connected: true, roomID: "general",
                              microphoneEnabled: false, speaking: true, lastActivity: sampleTime)),
        .register(sampleUser("u2")),
        .joinRoom(roomID: "general", userID: "u1", password: nil),
        .joinRoom(roomID: "important", userID: "u1", password: "секрет"),
        .leaveRoom(roomID: "general", userID: "u1"),
        .createRoom(name: "Моя", creator: "u1", maxParticipants: 5, isPrivate: true, password: "pw"),
        .createRoom(name: "Open", creator: "u1", maxParticipants: 5, isPrivate: false, password: nil),
        .signal(WebRTCSignal(from: "u1", to: "u2", room: "general", data: .offer(sdp: "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"))),
        .signal(WebRTCSignal(from: "u1", to: "u2", room: "general", data: .answer(sdp: "v=0\r\n"))),
        .signal(WebRTCSignal(from: "u1", to: "u2", room: "general",
                             data: .candidate(ICECandidateInit(candidate: "candidate:1 1 udp 2122260223 10.0.0.1 5000 typ host", sdpMLineIndex: 0, sdpMid: "0")))),
        .signal(WebRTCSignal(from: "u1", to: "u2", room: "general", data: .renegotiate)),
        .signal(WebRTCSignal(from: "u1", to: "u2", room: "general",
                             data: .transceiverRequest(kind: "audio", init: .object(["direction": .string("sendrecv")])))),
        .signal(WebRTCSignal(from: "u1", to: "u2", room: "general", data: .unknown(.object(["type": .string("pranswer"), "x": .number(1.5)])))),
        .microphoneToggled(userID: "u1", roomID: "general", enabled: true),
        .speaking(userID: "u1", roomID: "general", speaking: false),
        .getRooms,
        .getRoomParticipants(roomID: "general"),
        .unknown(type: "пинг", raw: .object(["тип": .string("пинг"), "n": .number(3)])),
    ]

    static let allServer: [ServerMessage] = [
        .usersUpdated([sampleUser("u1"), sampleUser("u2")]),
        .roomsUpdated([Room(id: "general", name: "Общий", creator: "system", participants: ["u1"], maxParticipants: 50, createdAt: sampleTime)]),
        .roomParticipantsUpdated(roomID: "general", participants: [sampleUser("u1")]),
        .roomCreated(Room(id: "room-1", name: "Моя", creator: "u1", participants: ["u1"], maxParticipants: 5, createdAt: sampleTime, isPrivate: true)),
        .joinedRoom(room: Room(id: "general", name: "Общий", creator: "system", maxParticipants: 50, createdAt: sampleTime), user: sampleUser("u1")),
        .leftRoom(roomID: "general", userID: "u2"),
        .signal(WebRTCSignal(from: "u2", to: "u1", room: "general", data: .offer(sdp: "v=0\r\n"))),
        .microphoneToggled(userID: "u1", roomID: "general", enabled: false),
        .speaking(userID: "u1", roomID: "general", speaking: true),
        .error(message: "Комната не найдена"),
        .unknown(type: "новое", raw: .object(["тип": .string("новое")])),
    ]

    @Test("every client message round-trips", arguments: allClient)
    func clientRoundTrip(_ message: ClientMessage) throws {
        let text = try SignalingCodec.encode(message)
        #expect(try SignalingCodec.decodeClient(text) == message)
        #expect(try json(text)["тип"]?.stringValue == message.type)
    }

    @Test("every server message round-trips", arguments: allServer)
    func serverRoundTrip(_ message: ServerMessage) throws {
        let text = try SignalingCodec.encode(message)
        #expect(try SignalingCodec.decodeServer(text) == message)
        #expect(try json(text)["тип"]?.stringValue == message.type)
    }

    @Test func participantKeysAreExact() throws {
        let text = try SignalingCodec.encode(ClientMessage.register(sampleUser("u1")))
        let user = try #require(try json(text)["пользователь"])
        guard case .object(let members) = user else { Issue.record("not an object"); return }
        #expect(Set(members.keys) == ["id", "имя", "телеграм_id", "аватар", "подключен", "в_комнате", "микрофон_включен", "говорит", "последняя_активность"])
        #expect(members["телеграм_id"] == .null)
        #expect(members["последняя_активность"] == .string("2024-05-01T12:30:00.123Z"))
    }

    @Test func roomKeysAreExact() throws {
        let text = try SignalingCodec.encode(ServerMessage.roomCreated(Room(id: "r", name: "n", creator: "c", maxParticipants: 3, createdAt: sampleTime)))
        guard case .object(let members) = try #require(try json(text)["комната"]) else { Issue.record("not an object"); return }
        #expect(Set(members.keys) == ["id", "название", "создатель", "участники", "максимум_участников", "создана", "активна", "приватная", "пароль"])
    }

    @Test func decodesBrowserRegistration() throws {
        // As the React client sends it: optional fields absent, extra fields present, chrono-style time.
        let text = #"{"тип":"присоединиться","пользователь":{"id":"abc","имя":"Петя","подключен":true,"микрофон_включен":true,"говорит":false,"последняя_активность":"2024-05-01T12:30:00.123456789+03:00","лишнее":[1,2]},"ещё":1}"#
        guard case .register(let user) = try SignalingCodec.decodeClient(text) else { Issue.record("wrong case"); return }
        #expect(user.id == "abc")
        #expect(user.name == "Петя")
        #expect(user.telegramID == nil && user.avatar == nil && user.roomID == nil)
        #expect(user.lastActivity == Timestamp(secondsSince1970: Timestamp(rfc3339: "2024-05-01T09:30:00Z")!.secondsSince1970, nanoseconds: 123_456_789))
    }

    @Test func decodesSimplePeerTrickleCandidate() throws {
        let text = #"{"тип":"webrtc-signal","от":"a","к":"b","комната":"general","данные":{"type":"candidate","candidate":{"candidate":"candidate:842163049 1 udp 1677729535 1.2.3.4 3478 typ srflx","sdpMLineIndex":0,"sdpMid":"0","usernameFragment":"x"}}}"#
        guard case .signal(let s) = try SignalingCodec.decodeServer(text) else { Issue.record("wrong case"); return }
        #expect(s.data == .candidate(ICECandidateInit(candidate: "candidate:842163049 1 udp 1677729535 1.2.3.4 3478 typ srflx", sdpMLineIndex: 0, sdpMid: "0", usernameFragment: "x")))
        // Relaying re-encodes to the same payload.
        #expect(try json(try SignalingCodec.encode(ServerMessage.signal(s)))["данные"] == (try json(text))["данные"])
    }

    @Test func malformedSignalPayloadIsUnknownNotFatal() throws {
        let text = #"{"тип":"webrtc-signal","от":"a","к":"b","комната":"general","данные":{"type":"offer","sdp":42}}"#
        guard case .signal(let s) = try SignalingCodec.decodeClient(text) else { Issue.record("wrong case"); return }
        guard case .unknown(let raw) = s.data else { Issue.record("expected unknown"); return }
        #expect(raw["sdp"] == .number(42))
    }

    @Test func unknownTypeIsKept() throws {
        let text = #"{"тип":"что-то-новое","поле":[true,null,"x"]}"#
        let message = try SignalingCodec.decodeServer(text)
        #expect(message == .unknown(type: "что-то-новое", raw: try json(text)))
    }

    @Test("bad input gives typed errors", arguments: [
        ("not json", SignalingError.invalidJSON),
        ("", SignalingError.invalidJSON),
        ("[1,2]", SignalingError.notAnObject),
        ("\"тип\"", SignalingError.notAnObject),
        ("{}", SignalingError.missingType),
        (#"{"тип":5}"#, SignalingError.missingType),
        (#"{"тип":"присоединиться-к-комнате","пользователь_id":"u"}"#, SignalingError.missingField("комната_id")),
        (#"{"тип":"присоединиться-к-комнате","комната_id":1,"пользователь_id":"u"}"#, SignalingError.wrongType("комната_id")),
        (#"{"тип":"микрофон-переключен","пользователь_id":"u","комната_id":"r","включен":"да"}"#, SignalingError.wrongType("включен")),
        (#"{"тип":"присоединиться","пользователь":{"id":"u","имя":"x","подключен":true,"микрофон_включен":true,"говорит":false}}"#,
         SignalingError.missingField("пользователь.последняя_активность")),
        (#"{"тип":"присоединиться","пользователь":{"id":"u","имя":"x","подключен":true,"микрофон_включен":true,"говорит":false,"последняя_активность":"вчера"}}"#,
         SignalingError.invalidValue("пользователь.последняя_активность")),
    ])
    func badInput(_ text: String, _ expected: SignalingError) {
        #expect(throws: expected) { try SignalingCodec.decodeClient(text) }
    }

    @Test func timestamps() throws {
        #expect(Timestamp(rfc3339: "1970-01-01T00:00:00Z")?.secondsSince1970 == 0)
        #expect(Timestamp(rfc3339: "2000-02-29T23:59:59Z")?.secondsSince1970 == 951_868_799)
        #expect(Timestamp(rfc3339: "2024-05-01 12:30:00z") != nil)
        #expect(Timestamp(rfc3339: "2023-02-29T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2024-05-01T12:30:00") == nil)
        #expect(Timestamp(rfc3339: "2024-05-01T12:30:00.Z") == nil)
        #expect(Timestamp(rfc3339: "2024-05-01T24:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2024-05-01T12:30:00Zjunk") == nil)
        let t = try #require(Timestamp(rfc3339: "1969-12-31T23:59:59.5Z"))
        #expect(t.secondsSince1970 == -1 && t.nanoseconds == 500_000_000)
        #expect(t.description == "1969-12-31T23:59:59.500Z")
        #expect(Timestamp(secondsSince1970: 0, nanoseconds: 1_500).description == "1970-01-01T00:00:00.000001500Z")
        #expect(Timestamp(secondsSince1970: 0, nanoseconds: 2_000).description == "1970-01-01T00:00:00.000002Z")
        // Formatting then parsing is the identity, over a wide range.
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2000 {
            let seconds = Int64(bitPattern: rng.next() % 8_000_000_000) - 2_000_000_000
            let nanos = Int32(rng.next() % 1_000_000_000)
            let value = Timestamp(secondsSince1970: seconds, nanoseconds: rng.next() % 2 == 0 ? nanos / 1_000_000 * 1_000_000 : nanos)
            #expect(Timestamp(rfc3339: value.description) == value)
        }
        // Truncations of a valid time never parse to garbage or crash.
        let full = "2024-05-01T12:30:00.123+05:30"
        for n in 0..<full.count {
            let prefix = String(full.prefix(n))
            if let parsed = Timestamp(rfc3339: prefix) { Issue.record("prefix \(prefix) parsed as \(parsed)") }
        }
    }

    @Test func mutationLoopNeverCrashesAndIsStable() throws {
        var rng = SplitMix64(seed: 0x5EED)
        let seeds = try Self.allClient.map { try SignalingCodec.encode($0) } + Self.allServer.map { try SignalingCodec.encode($0) }
        var parsed = 0
        for i in 0..<4000 {
            var bytes = Array(seeds[i % seeds.count].utf8)
            let mutations = 1 + Int(rng.next() % 4)
            for _ in 0..<mutations where !bytes.isEmpty {
                let at = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 5 {
                case 0: bytes[at] ^= UInt8(1 << (rng.next() % 8))
                case 1: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
                case 2: bytes.removeSubrange(at...)
                case 3: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
                default: bytes.insert(contentsOf: Array("{\"тип\":".utf8), at: at)
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            if let message = try? SignalingCodec.decodeClient(text) {
                parsed += 1
                let again = try SignalingCodec.decodeClient(try SignalingCodec.encode(message))
                #expect(again == message)
            }
            if let message = try? SignalingCodec.decodeServer(text) {
                let again = try SignalingCodec.decodeServer(try SignalingCodec.encode(message))
                #expect(again == message)
            }
        }
        #expect(parsed > 0)
    }
}

/// A small deterministic PRNG for mutation tests.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Signal relay keeps данные unchanged")
struct SignalRelayUnchangedTests {
    @Test func extraFieldsInDataSurviveARelay() throws {
        let text = #"{"тип":"webrtc-signal","от":"a","к":"b","комната":"general","данные":{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0},"t":123,"x":{"y":[1,2]}}}"#
        guard case .signal(let signal) = try SignalingCodec.decodeClient(text) else {
            Issue.record("not decoded as a signal")
            return
        }
        guard case .candidate = signal.data else {
            Issue.record("candidate payload not recognised: \(signal.data)")
            return
        }
        let relayed = try SignalingCodec.encode(ServerMessage.signal(signal))
        #expect(relayed.contains(#""t":123"#))
        #expect(relayed.contains(#""x":{"y":[1,2]}"#))
        guard case .signal(let back) = try SignalingCodec.decodeServer(relayed) else {
            Issue.record("relayed text is not a signal")
            return
        }
        #expect(back == signal)
        // A locally built signal encodes from its typed value.
        let local = WebRTCSignal(from: "a", to: "b", room: "general", data: .offer(sdp: "v=0"))
        #expect(try SignalingCodec.encode(ClientMessage.signal(local)).contains(#""sdp":"v=0""#))
    }
}
