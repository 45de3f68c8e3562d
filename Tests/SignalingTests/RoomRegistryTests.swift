import Testing
@testable import Signaling
import Wire

/// Flattens deliveries into (recipient, type) pairs in send order.
func flat(_ deliveries: [Delivery]) -> [String] {
    deliveries.flatMap { d in d.recipients.map { "\($0):\(d.message.type)" } }
}

@Suite("Room registry (sans-IO)")
struct RoomRegistryTests {
    let a = ConnectionID(1), b = ConnectionID(2), c = ConnectionID(3)

    @Test func presetRooms() {
        let registry = RoomRegistry(now: sampleTime)
        let rooms = registry.roomList
        #expect(rooms.map(\.id) == ["general", "important", "channel1", "channel2", "channel3"])
        #expect(rooms.map(\.name) == ["Общий", "Комната важных переговоров", "Канал 1", "Канал 2", "Канал 3"])
        #expect(rooms.map(\.maxParticipants) == [50, 10, 20, 20, 20])
    }

    @Test func scriptedSessionOrder() {
        var r = RoomRegistry(now: sampleTime)
        // Registration: everyone hears users-updated, then the newcomer gets rooms-updated.
        #expect(flat(r.handle(.register(sampleUser("A")), from: a)) == ["c1:пользователи-обновлены", "c1:комнаты-обновлены"])
        #expect(flat(r.handle(.register(sampleUser("B")), from: b)) == ["c1:пользователи-обновлены", "c2:пользователи-обновлены", "c2:комнаты-обновлены"])
        // Joining: the joiner gets joined, then every member (joiner too) gets the participant list.
        #expect(flat(r.handle(.joinRoom(roomID: "general", userID: "A", password: nil), from: a)) == ["c1:присоединился-к-комнате", "c1:участники-комнаты-обновлены"])
        let joinB = r.handle(.joinRoom(roomID: "general", userID: "B", password: nil), from: b)
        #expect(flat(joinB) == ["c2:присоединился-к-комнате", "c1:участники-комнаты-обновлены", "c2:участники-комнаты-обновлены"])
        if case .roomParticipantsUpdated(let room, let list) = joinB[1].message {
            #expect(room == "general" && list.map(\.id) == ["A", "B"])
            #expect(list.allSatisfy { $0.roomID == "general" })
        } else { Issue.record("expected participants") }
        // Relay goes to the target only, unchanged.
        let sig = WebRTCSignal(from: "A", to: "B", room: "general", data: .offer(sdp: "v=0"))
        #expect(r.handle(.signal(sig), from: a) == [Delivery(recipients: [b], message: .signal(sig))])
        // Mic and speaking go to every member, the sender included.
        #expect(flat(r.handle(.microphoneToggled(userID: "A", roomID: "general", enabled: false), from: a)) == ["c1:микрофон-переключен", "c2:микрофон-переключен"])
        #expect(flat(r.handle(.speaking(userID: "B", roomID: "general", speaking: true), from: b)) == ["c1:говорит", "c2:говорит"])
        #expect(r.users["A"]?.microphoneEnabled == false && r.users["B"]?.speaking == true)
        // Queries.
        #expect(flat(r.handle(.getRooms, from: a)) == ["c1:комнаты-обновлены"])
        #expect(flat(r.handle(.getRoomParticipants(roomID: "general"), from: b)) == ["c2:участники-комнаты-обновлены"])
        // Leaving: the others get left, then the members get the list.
        #expect(flat(r.handle(.leaveRoom(roomID: "general", userID: "B"), from: b)) == ["c1:покинул-комнату", "c1:участники-комнаты-обновлены"])
        // Creating: everyone gets created, the creator gets joined.
        let created = r.handle(.createRoom(name: "Моя", creator: "B", maxParticipants: 2, isPrivate: true, password: "pw"), from: b)
        #expect(flat(created) == ["c1:комната-создана", "c2:комната-создана", "c2:присоединился-к-комнате"])
        guard case .roomCreated(let room) = created[0].message else { Issue.record("expected room"); return }
        #expect(room.participants == ["B"] && room.creator == "B" && room.isPrivate && room.password == nil)
        // Disconnecting counts as leaving.
        #expect(flat(r.disconnect(a)) == [])
        #expect(flat(r.handle(.register(sampleUser("C")), from: c)) == ["c2:пользователи-обновлены", "c3:пользователи-обновлены", "c3:комнаты-обновлены"])
        #expect(flat(r.handle(.joinRoom(roomID: room.id, userID: "C", password: "pw"), from: c)) == ["c3:присоединился-к-комнате", "c2:участники-комнаты-обновлены", "c3:участники-комнаты-обновлены"])
        #expect(flat(r.disconnect(b)) == ["c3:покинул-комнату", "c3:участники-комнаты-обновлены"])
        // A created room disappears when empty; preset rooms stay.
        _ = r.disconnect(c)
        #expect(r.room(room.id) == nil)
        #expect(r.room("general") != nil)
    }

    @Test func failuresAnswerError() {
        var r = RoomRegistry(now: sampleTime)
        func errorText(_ d: [Delivery]) -> String? {
            guard d.count == 1, case .error(let text) = d[0].message else { return nil }
            return text
        }
        #expect(errorText(r.handle(.joinRoom(roomID: "general", userID: "A", password: nil), from: a)) == RoomRegistry.ErrorText.notRegistered)
        _ = r.handle(.register(sampleUser("A")), from: a)
        _ = r.handle(.register(sampleUser("B")), from: b)
        #expect(errorText(r.handle(.register(sampleUser("A")), from: c)) == RoomRegistry.ErrorText.idInUse)
        #expect(errorText(r.handle(.register(sampleUser("Z")), from: a)) == RoomRegistry.ErrorText.alreadyRegistered)
        #expect(errorText(r.handle(.joinRoom(roomID: "nope", userID: "A", password: nil), from: a)) == RoomRegistry.ErrorText.roomNotFound)
        #expect(errorText(r.handle(.joinRoom(roomID: "general", userID: "B", password: nil), from: a)) == RoomRegistry.ErrorText.notYourID)
        _ = r.handle(.createRoom(name: "x", creator: "A", maxParticipants: 1, isPrivate: true, password: "pw"), from: a)
        #expect(errorText(r.handle(.joinRoom(roomID: "room-1", userID: "B", password: "bad"), from: b)) == RoomRegistry.ErrorText.roomFull)
        _ = r.handle(.createRoom(name: "y", creator: "A", maxParticipants: 5, isPrivate: true, password: "pw"), from: a)
        #expect(errorText(r.handle(.joinRoom(roomID: "room-2", userID: "B", password: "bad"), from: b)) == RoomRegistry.ErrorText.wrongPassword)
        #expect(errorText(r.handle(.joinRoom(roomID: "room-2", userID: "B", password: nil), from: b)) == RoomRegistry.ErrorText.wrongPassword)
        #expect(r.room("room-1") == nil, "A left room-1 for room-2, so the empty created room is gone")
        #expect(errorText(r.handle(.createRoom(name: "  ", creator: "A", maxParticipants: 5, isPrivate: false, password: nil), from: a)) == RoomRegistry.ErrorText.invalidRoom)
        #expect(errorText(r.handle(.createRoom(name: "z", creator: "A", maxParticipants: 0, isPrivate: false, password: nil), from: a)) == RoomRegistry.ErrorText.invalidRoom)
        // Signals: forged sender, or a target in another room, are refused.
        _ = r.handle(.joinRoom(roomID: "general", userID: "B", password: nil), from: b)
        let forged = WebRTCSignal(from: "B", to: "A", room: "general", data: .renegotiate)
        #expect(errorText(r.handle(.signal(forged), from: a)) == RoomRegistry.ErrorText.notYourID)
        let crossRoom = WebRTCSignal(from: "A", to: "B", room: "room-2", data: .renegotiate)
        #expect(errorText(r.handle(.signal(crossRoom), from: a)) == RoomRegistry.ErrorText.recipientNotInRoom)
        #expect(errorText(r.handle(.microphoneToggled(userID: "A", roomID: "general", enabled: false), from: a)) == RoomRegistry.ErrorText.notInRoom)
        #expect(errorText(r.handle(.unknown(type: "x", raw: .null), from: a)) == RoomRegistry.ErrorText.unknownType)
        #expect(errorText(r.handle(.leaveRoom(roomID: "general", userID: "A"), from: a)) == RoomRegistry.ErrorText.notInRoom)
    }

    @Test func rejoinAfterReconnectIsIdempotent() {
        var r = RoomRegistry(now: sampleTime)
        _ = r.handle(.register(sampleUser("A")), from: a)
        _ = r.handle(.joinRoom(roomID: "general", userID: "A", password: nil), from: a)
        let again = r.handle(.joinRoom(roomID: "general", userID: "A", password: nil), from: a)
        #expect(flat(again) == ["c1:присоединился-к-комнате", "c1:участники-комнаты-обновлены"])
        #expect(r.room("general")?.participants == ["A"])
        _ = r.disconnect(a)
        #expect(flat(r.handle(.register(sampleUser("A")), from: b)) == ["c2:пользователи-обновлены", "c2:комнаты-обновлены"])
        #expect(r.room("general")?.participants == [])
    }

    @Test func tokenBucket() {
        var bucket = TokenBucket(capacity: 5, refillPerSecond: 10)
        func at(_ ms: Int64) -> MonotonicTime { MonotonicTime(nanoseconds: ms * 1_000_000) }
        var results: [Bool] = []
        for _ in 0..<6 { results.append(bucket.take(now: at(1000))) }
        #expect(results == [true, true, true, true, true, false])
        let refilled = bucket.take(now: at(1100))
        let empty = bucket.take(now: at(1100))
        #expect(refilled && !empty)
        results = []
        for _ in 0..<6 { results.append(bucket.take(now: at(5000))) }
        #expect(results == [true, true, true, true, true, false], "refill is capped at the burst")
        let backwards = bucket.take(now: at(100))
        #expect(!backwards, "time going backwards adds no tokens")
    }
}
