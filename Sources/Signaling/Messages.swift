#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Why a text frame could not be turned into a message.
public enum SignalingError: Error, Equatable, Sendable {
    /// Not JSON at all, or not valid UTF-8.
    case invalidJSON
    /// JSON, but not an object.
    case notAnObject
    /// The object has no string `тип`.
    case missingType
    /// A required field is absent or null (dotted path).
    case missingField(String)
    /// A field has the wrong JSON type (dotted path).
    case wrongType(String)
    /// A field has the right type but an unusable value, such as a bad time (dotted path).
    case invalidValue(String)
    /// The frame exceeds the size limit.
    case tooLarge(size: Int, limit: Int)
    /// A message could not be encoded (should not happen for values built by this module).
    case encodingFailed
}

/// The message tags (`тип`).
public enum MessageType {
    public static let register = "присоединиться"
    public static let joinRoom = "присоединиться-к-комнате"
    public static let leaveRoom = "покинуть-комнату"
    public static let createRoom = "создать-комнату"
    public static let signal = "webrtc-signal"
    public static let microphoneToggled = "микрофон-переключен"
    public static let speaking = "говорит"
    public static let getRooms = "получить-комнаты"
    public static let getRoomParticipants = "получить-пользователей-комнаты"
    public static let usersUpdated = "пользователи-обновлены"
    public static let roomsUpdated = "комнаты-обновлены"
    public static let roomParticipantsUpdated = "участники-комнаты-обновлены"
    public static let roomCreated = "комната-создана"
    public static let joinedRoom = "присоединился-к-комнате"
    public static let leftRoom = "покинул-комнату"
    public static let error = "ошибка"
}

/// A message from a participant to the server.
public enum ClientMessage: Sendable, Hashable, Codable {
    /// `присоединиться`: register the socket under `participant.id`.
    case register(Participant)
    /// `присоединиться-к-комнате`.
    case joinRoom(roomID: String, userID: String, password: String?)
    /// `покинуть-комнату`.
    case leaveRoom(roomID: String, userID: String)
    /// `создать-комнату`.
    case createRoom(name: String, creator: String, maxParticipants: Int, isPrivate: Bool, password: String?)
    /// `webrtc-signal`.
    case signal(WebRTCSignal)
    /// `микрофон-переключен`.
    case microphoneToggled(userID: String, roomID: String, enabled: Bool)
    /// `говорит`.
    case speaking(userID: String, roomID: String, speaking: Bool)
    /// `получить-комнаты`.
    case getRooms
    /// `получить-пользователей-комнаты`.
    case getRoomParticipants(roomID: String)
    /// A message with a tag this module does not know.
    case unknown(type: String, raw: JSONValue)

    /// The `тип` of this message.
    public var type: String {
        switch self {
        case .register: MessageType.register
        case .joinRoom: MessageType.joinRoom
        case .leaveRoom: MessageType.leaveRoom
        case .createRoom: MessageType.createRoom
        case .signal: MessageType.signal
        case .microphoneToggled: MessageType.microphoneToggled
        case .speaking: MessageType.speaking
        case .getRooms: MessageType.getRooms
        case .getRoomParticipants: MessageType.getRoomParticipants
        case .unknown(let type, _): type
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let type = try c.decode(String.self, forKey: "тип")
        switch type {
        case MessageType.register:
            self = .register(try c.decode(Participant.self, forKey: "пользователь"))
        case MessageType.joinRoom:
            self = .joinRoom(
                roomID: try c.decode(String.self, forKey: "комната_id"),
                userID: try c.decode(String.self, forKey: "пользователь_id"),
                password: try c.decodeIfPresent(String.self, forKey: "пароль"))
        case MessageType.leaveRoom:
            self = .leaveRoom(
                roomID: try c.decode(String.self, forKey: "комната_id"),
                userID: try c.decode(String.self, forKey: "пользователь_id"))
        case MessageType.createRoom:
            self = .createRoom(
                name: try c.decode(String.self, forKey: "название"),
                creator: try c.decode(String.self, forKey: "создатель"),
                maxParticipants: try c.decode(Int.self, forKey: "максимум_участников"),
                isPrivate: try c.decode(Bool.self, forKey: "приватная"),
                password: try c.decodeIfPresent(String.self, forKey: "пароль"))
        case MessageType.signal:
            self = .signal(try decodeSignal(c))
        case MessageType.microphoneToggled:
            self = .microphoneToggled(
                userID: try c.decode(String.self, forKey: "пользователь_id"),
                roomID: try c.decode(String.self, forKey: "комната_id"),
                enabled: try c.decode(Bool.self, forKey: "включен"))
        case MessageType.speaking:
            self = .speaking(
                userID: try c.decode(String.self, forKey: "пользователь_id"),
                roomID: try c.decode(String.self, forKey: "комната_id"),
                speaking: try c.decode(Bool.self, forKey: "говорит"))
        case MessageType.getRooms:
            self = .getRooms
        case MessageType.getRoomParticipants:
            self = .getRoomParticipants(roomID: try c.decode(String.self, forKey: "комната_id"))
        default:
            self = .unknown(type: type, raw: try JSONValue(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if case .unknown(_, let raw) = self {
            try raw.encode(to: encoder)
            return
        }
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(type, forKey: "тип")
        switch self {
        case .register(let participant):
            try c.encode(participant, forKey: "пользователь")
        case .joinRoom(let roomID, let userID, let password):
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(userID, forKey: "пользователь_id")
            try c.encode(password, forKey: "пароль")
        case .leaveRoom(let roomID, let userID):
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(userID, forKey: "пользователь_id")
        case .createRoom(let name, let creator, let maxParticipants, let isPrivate, let password):
            try c.encode(name, forKey: "название")
            try c.encode(creator, forKey: "создатель")
            try c.encode(maxParticipants, forKey: "максимум_участников")
            try c.encode(isPrivate, forKey: "приватная")
            try c.encode(password, forKey: "пароль")
        case .signal(let signal):
            try encodeSignal(signal, into: &c)
        case .microphoneToggled(let userID, let roomID, let enabled):
            try c.encode(userID, forKey: "пользователь_id")
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(enabled, forKey: "включен")
        case .speaking(let userID, let roomID, let speaking):
            try c.encode(userID, forKey: "пользователь_id")
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(speaking, forKey: "говорит")
        case .getRooms:
            break
        case .getRoomParticipants(let roomID):
            try c.encode(roomID, forKey: "комната_id")
        case .unknown:
            break
        }
    }
}

/// A message from the server to a participant.
public enum ServerMessage: Sendable, Hashable, Codable {
    /// `пользователи-обновлены`.
    case usersUpdated([Participant])
    /// `комнаты-обновлены`.
    case roomsUpdated([Room])
    /// `участники-комнаты-обновлены`.
    case roomParticipantsUpdated(roomID: String, participants: [Participant])
    /// `комната-создана`.
    case roomCreated(Room)
    /// `присоединился-к-комнате`.
    case joinedRoom(room: Room, user: Participant)
    /// `покинул-комнату`.
    case leftRoom(roomID: String, userID: String)
    /// `webrtc-signal`.
    case signal(WebRTCSignal)
    /// `микрофон-переключен`.
    case microphoneToggled(userID: String, roomID: String, enabled: Bool)
    /// `говорит`.
    case speaking(userID: String, roomID: String, speaking: Bool)
    /// `ошибка`.
    case error(message: String)
    /// A message with a tag this module does not know.
    case unknown(type: String, raw: JSONValue)

    /// The `тип` of this message.
    public var type: String {
        switch self {
        case .usersUpdated: MessageType.usersUpdated
        case .roomsUpdated: MessageType.roomsUpdated
        case .roomParticipantsUpdated: MessageType.roomParticipantsUpdated
        case .roomCreated: MessageType.roomCreated
        case .joinedRoom: MessageType.joinedRoom
        case .leftRoom: MessageType.leftRoom
        case .signal: MessageType.signal
        case .microphoneToggled: MessageType.microphoneToggled
        case .speaking: MessageType.speaking
        case .error: MessageType.error
        case .unknown(let type, _): type
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        let type = try c.decode(String.self, forKey: "тип")
        switch type {
        case MessageType.usersUpdated:
            self = .usersUpdated(try c.decode([Participant].self, forKey: "пользователи"))
        case MessageType.roomsUpdated:
            self = .roomsUpdated(try c.decode([Room].self, forKey: "комнаты"))
        case MessageType.roomParticipantsUpdated:
            self = .roomParticipantsUpdated(
                roomID: try c.decode(String.self, forKey: "комната_id"),
                participants: try c.decode([Participant].self, forKey: "участники"))
        case MessageType.roomCreated:
            self = .roomCreated(try c.decode(Room.self, forKey: "комната"))
        case MessageType.joinedRoom:
            self = .joinedRoom(
                room: try c.decode(Room.self, forKey: "комната"),
                user: try c.decode(Participant.self, forKey: "пользователь"))
        case MessageType.leftRoom:
            self = .leftRoom(
                roomID: try c.decode(String.self, forKey: "комната_id"),
                userID: try c.decode(String.self, forKey: "пользователь_id"))
        case MessageType.signal:
            self = .signal(try decodeSignal(c))
        case MessageType.microphoneToggled:
            self = .microphoneToggled(
                userID: try c.decode(String.self, forKey: "пользователь_id"),
                roomID: try c.decode(String.self, forKey: "комната_id"),
                enabled: try c.decode(Bool.self, forKey: "включен"))
        case MessageType.speaking:
            self = .speaking(
                userID: try c.decode(String.self, forKey: "пользователь_id"),
                roomID: try c.decode(String.self, forKey: "комната_id"),
                speaking: try c.decode(Bool.self, forKey: "говорит"))
        case MessageType.error:
            self = .error(message: try c.decodeIfPresent(String.self, forKey: "сообщение") ?? "")
        default:
            self = .unknown(type: type, raw: try JSONValue(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        if case .unknown(_, let raw) = self {
            try raw.encode(to: encoder)
            return
        }
        var c = encoder.container(keyedBy: AnyKey.self)
        try c.encode(type, forKey: "тип")
        switch self {
        case .usersUpdated(let users):
            try c.encode(users, forKey: "пользователи")
        case .roomsUpdated(let rooms):
            try c.encode(rooms, forKey: "комнаты")
        case .roomParticipantsUpdated(let roomID, let participants):
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(participants, forKey: "участники")
        case .roomCreated(let room):
            try c.encode(room, forKey: "комната")
        case .joinedRoom(let room, let user):
            try c.encode(room, forKey: "комната")
            try c.encode(user, forKey: "пользователь")
        case .leftRoom(let roomID, let userID):
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(userID, forKey: "пользователь_id")
        case .signal(let signal):
            try encodeSignal(signal, into: &c)
        case .microphoneToggled(let userID, let roomID, let enabled):
            try c.encode(userID, forKey: "пользователь_id")
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(enabled, forKey: "включен")
        case .speaking(let userID, let roomID, let speaking):
            try c.encode(userID, forKey: "пользователь_id")
            try c.encode(roomID, forKey: "комната_id")
            try c.encode(speaking, forKey: "говорит")
        case .error(let message):
            try c.encode(message, forKey: "сообщение")
        case .unknown:
            break
        }
    }
}

private func decodeSignal(_ c: KeyedDecodingContainer<AnyKey>) throws -> WebRTCSignal {
    let raw = try c.decode(JSONValue.self, forKey: "данные")
    return WebRTCSignal(
        from: try c.decode(String.self, forKey: "от"),
        to: try c.decode(String.self, forKey: "к"),
        room: try c.decode(String.self, forKey: "комната"),
        data: SimplePeerSignal(json: raw), rawData: raw)
}

private func encodeSignal(_ s: WebRTCSignal, into c: inout KeyedEncodingContainer<AnyKey>) throws {
    try c.encode(s.from, forKey: "от")
    try c.encode(s.to, forKey: "к")
    try c.encode(s.room, forKey: "комната")
    // Relayed signals keep the sender's `данные` byte for byte in content (the protocol relays it unchanged).
    if let raw = s.rawData { try c.encode(raw, forKey: "данные") } else { try c.encode(s.data, forKey: "данные") }
}

/// Turns text frames into messages and back. Decoding is total: any input gives a message or a `SignalingError`.
public enum SignalingCodec {
    /// Decodes a client → server message.
    public static func decodeClient(_ text: String) throws(SignalingError) -> ClientMessage {
        try decode(ClientMessage.self, text)
    }

    /// Decodes a server → client message.
    public static func decodeServer(_ text: String) throws(SignalingError) -> ServerMessage {
        try decode(ServerMessage.self, text)
    }

    /// Encodes any message to one JSON text.
    public static func encode(_ message: some Encodable) throws(SignalingError) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        do {
            let data = try encoder.encode(message)
            return String(decoding: data, as: UTF8.self)
        } catch {
            throw .encodingFailed
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws(SignalingError) -> T {
        let data = Data(text.utf8)
        let value: T
        do {
            value = try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw classify(error, text: text)
        } catch {
            throw .invalidJSON
        }
        return value
    }

    private static func classify(_ error: DecodingError, text: String) -> SignalingError {
        func path(_ context: DecodingError.Context, _ key: (any CodingKey)? = nil) -> String {
            var keys = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }
            if let key { keys.append(key.stringValue) }
            return keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let p = path(context, key)
            return p == "тип" ? .missingType : .missingField(p)
        case .valueNotFound(_, let context):
            let p = path(context)
            return p == "тип" ? .missingType : .missingField(p)
        case .typeMismatch(_, let context):
            let p = path(context)
            if context.codingPath.isEmpty { return validJSON(text) ? .notAnObject : .invalidJSON }
            return p == "тип" ? .missingType : .wrongType(p)
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty { return validJSON(text) ? .notAnObject : .invalidJSON }
            return .invalidValue(path(context))
        @unknown default:
            return .invalidJSON
        }
    }

    private static func validJSON(_ text: String) -> Bool {
        (try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))) != nil
    }
}
