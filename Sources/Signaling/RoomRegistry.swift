/// Identifies one WebSocket connection on the server.
public struct ConnectionID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "c\(rawValue)" }
}

/// One message to deliver to some connections, in order.
public struct Delivery: Sendable, Equatable {
    public var recipients: [ConnectionID]
    public var message: ServerMessage
}

/// The room server's state and rules, without any I/O: feed it messages and disconnections, send what it returns.
///
/// Semantics follow room-protocol.md, minus the weaknesses it lists: `от` must be the sender,
/// signals only flow within a room, preset rooms survive being empty, and a live id cannot be taken over.
public struct RoomRegistry: Sendable {
    /// Error texts sent in `ошибка`.
    public enum ErrorText {
        public static let notRegistered = "Сначала нужно присоединиться"
        public static let idInUse = "Этот id уже используется другим подключением"
        public static let alreadyRegistered = "Подключение уже зарегистрировано под другим id"
        public static let notYourID = "Можно действовать только от своего имени"
        public static let roomNotFound = "Комната не найдена"
        public static let roomFull = "Комната заполнена"
        public static let wrongPassword = "Неверный пароль"
        public static let notInRoom = "Пользователь не в этой комнате"
        public static let recipientNotInRoom = "Получатель не в вашей комнате"
        public static let invalidRoom = "Недопустимые параметры комнаты"
        public static let unknownType = "Неизвестный тип сообщения"
        public static let badMessage = "Не удалось разобрать сообщение"
        public static let rateLimited = "Слишком много сообщений"
    }

    struct RoomEntry: Sendable {
        var room: Room
        var preset: Bool
    }

    private(set) var users: [String: Participant] = [:]
    private var userConnection: [String: ConnectionID] = [:]
    private var connectionUser: [ConnectionID: String] = [:]
    private var rooms: [String: RoomEntry] = [:]
    private var roomOrder: [String] = []
    private var nextRoomNumber = 1
    /// The largest `максимум_участников` a created room may ask for.
    public var maxRoomCapacity = 100

    /// The preset rooms of the existing server.
    public static let presetRooms: [(id: String, name: String, capacity: Int)] = [
        ("general", "Общий", 50),
        ("important", "Комната важных переговоров", 10),
        ("channel1", "Канал 1", 20),
        ("channel2", "Канал 2", 20),
        ("channel3", "Канал 3", 20),
    ]

    public init(now: Timestamp = .now()) {
        for preset in Self.presetRooms {
            let room = Room(id: preset.id, name: preset.name, creator: "system", maxParticipants: preset.capacity, createdAt: now)
            rooms[preset.id] = RoomEntry(room: room, preset: true)
            roomOrder.append(preset.id)
        }
    }

    /// Number of registered users.
    public var userCount: Int { users.count }
    /// Number of rooms.
    public var roomCount: Int { rooms.count }
    /// The user registered on a connection.
    public func user(on connection: ConnectionID) -> String? { connectionUser[connection] }
    /// The rooms in display order, passwords hidden.
    public var roomList: [Room] { roomOrder.compactMap { rooms[$0].map { publicRoom($0.room) } } }
    /// A room by id, password hidden.
    public func room(_ id: String) -> Room? { rooms[id].map { publicRoom($0.room) } }

    private func publicRoom(_ room: Room) -> Room {
        var room = room
        room.password = nil
        return room
    }

    private var allConnections: [ConnectionID] { connectionUser.keys.sorted() }

    private func members(of roomID: String) -> [ConnectionID] {
        guard let entry = rooms[roomID] else { return [] }
        return entry.room.participants.compactMap { userConnection[$0] }
    }

    private func participants(of roomID: String) -> [Participant] {
        guard let entry = rooms[roomID] else { return [] }
        return entry.room.participants.compactMap { users[$0] }
    }

    private func allUsers() -> [Participant] { users.keys.sorted().compactMap { users[$0] } }

    /// Applies one message from `connection`; returns what to send, in order.
    public mutating func handle(_ message: ClientMessage, from connection: ConnectionID, now: Timestamp = .now()) -> [Delivery] {
        func error(_ text: String) -> [Delivery] { [Delivery(recipients: [connection], message: .error(message: text))] }
        if case .register(let participant) = message {
            return register(participant, connection: connection, now: now)
        }
        switch message {
        case .getRooms:
            return [Delivery(recipients: [connection], message: .roomsUpdated(roomList))]
        case .unknown:
            return error(ErrorText.unknownType)
        default:
            break
        }
        guard let me = connectionUser[connection] else { return error(ErrorText.notRegistered) }
        users[me]?.lastActivity = now
        switch message {
        case .register, .getRooms, .unknown:
            return []
        case .getRoomParticipants(let roomID):
            guard rooms[roomID] != nil else { return error(ErrorText.roomNotFound) }
            return [Delivery(recipients: [connection], message: .roomParticipantsUpdated(roomID: roomID, participants: participants(of: roomID)))]
        case .joinRoom(let roomID, let userID, let password):
            guard userID == me else { return error(ErrorText.notYourID) }
            guard let entry = rooms[roomID] else { return error(ErrorText.roomNotFound) }
            let already = entry.room.participants.contains(me)
            if !already {
                guard entry.room.participants.count < entry.room.maxParticipants else { return error(ErrorText.roomFull) }
            }
            if let expected = entry.room.password, !expected.isEmpty, password != expected {
                return error(ErrorText.wrongPassword)
            }
            var out: [Delivery] = []
            if let current = users[me]?.roomID, current != roomID {
                out += removeFromRoom(me, roomID: current)
            }
            if !already { rooms[roomID]?.room.participants.append(me) }
            users[me]?.roomID = roomID
            guard let room = rooms[roomID]?.room, let user = users[me] else { return out }
            out.append(Delivery(recipients: [connection], message: .joinedRoom(room: publicRoom(room), user: user)))
            out.append(Delivery(recipients: members(of: roomID), message: .roomParticipantsUpdated(roomID: roomID, participants: participants(of: roomID))))
            return out
        case .leaveRoom(let roomID, let userID):
            guard userID == me else { return error(ErrorText.notYourID) }
            guard rooms[roomID]?.room.participants.contains(me) == true else { return error(ErrorText.notInRoom) }
            return removeFromRoom(me, roomID: roomID)
        case .createRoom(let name, let creator, let maxParticipants, let isPrivate, let password):
            guard creator == me else { return error(ErrorText.notYourID) }
            let trimmed = name.trimmingSpaces
            guard !trimmed.isEmpty, trimmed.count <= 100, (1...maxRoomCapacity).contains(maxParticipants) else {
                return error(ErrorText.invalidRoom)
            }
            var out: [Delivery] = []
            if let current = users[me]?.roomID { out += removeFromRoom(me, roomID: current) }
            var id = "room-\(nextRoomNumber)"
            while rooms[id] != nil {
                nextRoomNumber += 1
                id = "room-\(nextRoomNumber)"
            }
            nextRoomNumber += 1
            let pw = password.flatMap { $0.isEmpty ? nil : $0 }
            let room = Room(id: id, name: trimmed, creator: me, participants: [me], maxParticipants: maxParticipants,
                            createdAt: now, active: true, isPrivate: isPrivate, password: pw)
            rooms[id] = RoomEntry(room: room, preset: false)
            roomOrder.append(id)
            users[me]?.roomID = id
            out.append(Delivery(recipients: allConnections, message: .roomCreated(publicRoom(room))))
            if let user = users[me] {
                out.append(Delivery(recipients: [connection], message: .joinedRoom(room: publicRoom(room), user: user)))
            }
            return out
        case .signal(let signal):
            guard signal.from == me else { return error(ErrorText.notYourID) }
            guard let myRoom = users[me]?.roomID, myRoom == signal.room,
                  users[signal.to]?.roomID == myRoom, signal.to != me,
                  let target = userConnection[signal.to]
            else { return error(ErrorText.recipientNotInRoom) }
            return [Delivery(recipients: [target], message: .signal(signal))]
        case .microphoneToggled(let userID, let roomID, let enabled):
            guard userID == me else { return error(ErrorText.notYourID) }
            guard users[me]?.roomID == roomID else { return error(ErrorText.notInRoom) }
            users[me]?.microphoneEnabled = enabled
            return [Delivery(recipients: members(of: roomID), message: .microphoneToggled(userID: me, roomID: roomID, enabled: enabled))]
        case .speaking(let userID, let roomID, let speaking):
            guard userID == me else { return error(ErrorText.notYourID) }
            guard users[me]?.roomID == roomID else { return error(ErrorText.notInRoom) }
            users[me]?.speaking = speaking
            return [Delivery(recipients: members(of: roomID), message: .speaking(userID: me, roomID: roomID, speaking: speaking))]
        }
    }

    private mutating func register(_ participant: Participant, connection: ConnectionID, now: Timestamp) -> [Delivery] {
        func error(_ text: String) -> [Delivery] { [Delivery(recipients: [connection], message: .error(message: text))] }
        if let existing = connectionUser[connection], existing != participant.id { return error(ErrorText.alreadyRegistered) }
        if let holder = userConnection[participant.id], holder != connection { return error(ErrorText.idInUse) }
        guard !participant.id.isEmpty, participant.id.utf8.count <= 128, participant.name.utf8.count <= 256 else {
            return error(ErrorText.badMessage)
        }
        var user = participant
        user.connected = true
        user.roomID = users[participant.id]?.roomID
        user.speaking = users[participant.id]?.speaking ?? false
        user.lastActivity = now
        users[participant.id] = user
        userConnection[participant.id] = connection
        connectionUser[connection] = participant.id
        return [
            Delivery(recipients: allConnections, message: .usersUpdated(allUsers())),
            Delivery(recipients: [connection], message: .roomsUpdated(roomList)),
        ]
    }

    private mutating func removeFromRoom(_ userID: String, roomID: String) -> [Delivery] {
        guard var entry = rooms[roomID], let index = entry.room.participants.firstIndex(of: userID) else { return [] }
        entry.room.participants.remove(at: index)
        if users[userID]?.roomID == roomID {
            users[userID]?.roomID = nil
            users[userID]?.speaking = false
        }
        if entry.room.participants.isEmpty && !entry.preset {
            rooms[roomID] = nil
            roomOrder.removeAll { $0 == roomID }
            return []
        }
        rooms[roomID] = entry
        let others = members(of: roomID)
        return [
            Delivery(recipients: others, message: .leftRoom(roomID: roomID, userID: userID)),
            Delivery(recipients: others, message: .roomParticipantsUpdated(roomID: roomID, participants: participants(of: roomID))),
        ]
    }

    /// Forgets a closed connection: its room hears `покинул-комнату` and `участники-комнаты-обновлены`.
    public mutating func disconnect(_ connection: ConnectionID) -> [Delivery] {
        guard let me = connectionUser.removeValue(forKey: connection) else { return [] }
        var out: [Delivery] = []
        if let roomID = users[me]?.roomID { out = removeFromRoom(me, roomID: roomID) }
        users[me] = nil
        userConnection[me] = nil
        return out
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
