/// `Пользователь`: a participant as the server knows it.
public struct Participant: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var telegramID: Int64?
    public var avatar: String?
    public var connected: Bool
    public var roomID: String?
    public var microphoneEnabled: Bool
    public var speaking: Bool
    public var lastActivity: Timestamp

    public init(
        id: String, name: String, telegramID: Int64? = nil, avatar: String? = nil, connected: Bool = true,
        roomID: String? = nil, microphoneEnabled: Bool = true, speaking: Bool = false, lastActivity: Timestamp = .now()
    ) {
        self.id = id
        self.name = name
        self.telegramID = telegramID
        self.avatar = avatar
        self.connected = connected
        self.roomID = roomID
        self.microphoneEnabled = microphoneEnabled
        self.speaking = speaking
        self.lastActivity = lastActivity
    }

    enum CodingKeys: String, CodingKey {
        case id
        case name = "имя"
        case telegramID = "телеграм_id"
        case avatar = "аватар"
        case connected = "подключен"
        case roomID = "в_комнате"
        case microphoneEnabled = "микрофон_включен"
        case speaking = "говорит"
        case lastActivity = "последняя_активность"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        telegramID = try c.decodeIfPresent(Int64.self, forKey: .telegramID)
        avatar = try c.decodeIfPresent(String.self, forKey: .avatar)
        connected = try c.decode(Bool.self, forKey: .connected)
        roomID = try c.decodeIfPresent(String.self, forKey: .roomID)
        microphoneEnabled = try c.decode(Bool.self, forKey: .microphoneEnabled)
        speaking = try c.decode(Bool.self, forKey: .speaking)
        lastActivity = try c.decode(Timestamp.self, forKey: .lastActivity)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(telegramID, forKey: .telegramID)
        try c.encode(avatar, forKey: .avatar)
        try c.encode(connected, forKey: .connected)
        try c.encode(roomID, forKey: .roomID)
        try c.encode(microphoneEnabled, forKey: .microphoneEnabled)
        try c.encode(speaking, forKey: .speaking)
        try c.encode(lastActivity, forKey: .lastActivity)
    }
}

/// `Комната`: a voice room.
public struct Room: Sendable, Hashable, Codable {
    public var id: String
    public var name: String
    public var creator: String
    public var participants: [String]
    public var maxParticipants: Int
    public var createdAt: Timestamp
    public var active: Bool
    public var isPrivate: Bool
    public var password: String?

    public init(
        id: String, name: String, creator: String, participants: [String] = [], maxParticipants: Int,
        createdAt: Timestamp = .now(), active: Bool = true, isPrivate: Bool = false, password: String? = nil
    ) {
        self.id = id
        self.name = name
        self.creator = creator
        self.participants = participants
        self.maxParticipants = maxParticipants
        self.createdAt = createdAt
        self.active = active
        self.isPrivate = isPrivate
        self.password = password
    }

    enum CodingKeys: String, CodingKey {
        case id
        case name = "название"
        case creator = "создатель"
        case participants = "участники"
        case maxParticipants = "максимум_участников"
        case createdAt = "создана"
        case active = "активна"
        case isPrivate = "приватная"
        case password = "пароль"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        name = try c.decode(String.self, forKey: .name)
        creator = try c.decode(String.self, forKey: .creator)
        participants = try c.decode([String].self, forKey: .participants)
        maxParticipants = try c.decode(Int.self, forKey: .maxParticipants)
        createdAt = try c.decode(Timestamp.self, forKey: .createdAt)
        active = try c.decode(Bool.self, forKey: .active)
        isPrivate = try c.decode(Bool.self, forKey: .isPrivate)
        password = try c.decodeIfPresent(String.self, forKey: .password)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(name, forKey: .name)
        try c.encode(creator, forKey: .creator)
        try c.encode(participants, forKey: .participants)
        try c.encode(maxParticipants, forKey: .maxParticipants)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(active, forKey: .active)
        try c.encode(isPrivate, forKey: .isPrivate)
        try c.encode(password, forKey: .password)
    }
}

/// The body of `webrtc-signal`: a SimplePeer signal from one participant to another in a room.
public struct WebRTCSignal: Sendable, Hashable {
    public var from: String
    public var to: String
    public var room: String
    public var data: SimplePeerSignal
    /// The `данные` object exactly as it was received, so a server relays it unchanged (extra
    /// fields included); nil for signals built locally. Not part of equality.
    public var rawData: JSONValue?

    public init(from: String, to: String, room: String, data: SimplePeerSignal, rawData: JSONValue? = nil) {
        self.from = from
        self.to = to
        self.room = room
        self.data = data
        self.rawData = rawData
    }

    public static func == (lhs: WebRTCSignal, rhs: WebRTCSignal) -> Bool {
        lhs.from == rhs.from && lhs.to == rhs.to && lhs.room == rhs.room && lhs.data == rhs.data
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(from)
        hasher.combine(to)
        hasher.combine(room)
        hasher.combine(data)
    }
}

/// An ICE candidate as SimplePeer sends it with trickle ICE.
public struct ICECandidateInit: Sendable, Hashable {
    public var candidate: String
    public var sdpMLineIndex: Int?
    public var sdpMid: String?
    /// Sent by browsers that pass the whole `RTCIceCandidate.toJSON()`; kept when relayed.
    public var usernameFragment: String?

    public init(candidate: String, sdpMLineIndex: Int? = nil, sdpMid: String? = nil, usernameFragment: String? = nil) {
        self.candidate = candidate
        self.sdpMLineIndex = sdpMLineIndex
        self.sdpMid = sdpMid
        self.usernameFragment = usernameFragment
    }
}

/// A SimplePeer signal object: the `данные` of `webrtc-signal`.
public enum SimplePeerSignal: Sendable, Hashable, Codable {
    case offer(sdp: String)
    case answer(sdp: String)
    case candidate(ICECandidateInit)
    case renegotiate
    case transceiverRequest(kind: String, init: JSONValue?)
    /// Anything else, kept as it came.
    case unknown(JSONValue)

    /// Interprets a JSON value; anything that does not match a known shape becomes `.unknown`.
    public init(json: JSONValue) {
        switch json["type"]?.stringValue {
        case "offer":
            if let sdp = json["sdp"]?.stringValue { self = .offer(sdp: sdp); return }
        case "answer":
            if let sdp = json["sdp"]?.stringValue { self = .answer(sdp: sdp); return }
        case "candidate":
            if let c = json["candidate"], let text = c["candidate"]?.stringValue {
                var index: Int?
                if let n = c["sdpMLineIndex"]?.numberValue, n.rounded() == n, n >= 0, n < 65536 { index = Int(n) }
                self = .candidate(ICECandidateInit(
                    candidate: text, sdpMLineIndex: index, sdpMid: c["sdpMid"]?.stringValue,
                    usernameFragment: c["usernameFragment"]?.stringValue))
                return
            }
        case "renegotiate":
            self = .renegotiate
            return
        case "transceiverRequest":
            if let request = json["transceiverRequest"], let kind = request["kind"]?.stringValue {
                self = .transceiverRequest(kind: kind, init: request["init"])
                return
            }
        default:
            break
        }
        self = .unknown(json)
    }

    /// The JSON form SimplePeer sends.
    public var json: JSONValue {
        switch self {
        case .offer(let sdp): return .object(["type": .string("offer"), "sdp": .string(sdp)])
        case .answer(let sdp): return .object(["type": .string("answer"), "sdp": .string(sdp)])
        case .candidate(let c):
            var inner: [String: JSONValue] = ["candidate": .string(c.candidate)]
            inner["sdpMLineIndex"] = c.sdpMLineIndex.map { .number(Double($0)) } ?? .null
            inner["sdpMid"] = c.sdpMid.map { .string($0) } ?? .null
            if let ufrag = c.usernameFragment { inner["usernameFragment"] = .string(ufrag) }
            return .object(["type": .string("candidate"), "candidate": .object(inner)])
        case .renegotiate: return .object(["type": .string("renegotiate"), "renegotiate": .bool(true)])
        case .transceiverRequest(let kind, let initValue):
            var inner: [String: JSONValue] = ["kind": .string(kind)]
            if let initValue { inner["init"] = initValue }
            return .object(["type": .string("transceiverRequest"), "transceiverRequest": .object(inner)])
        case .unknown(let raw): return raw
        }
    }

    public init(from decoder: any Decoder) throws {
        self.init(json: try JSONValue(from: decoder))
    }

    public func encode(to encoder: any Encoder) throws {
        try json.encode(to: encoder)
    }
}
