#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address, as a value.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    /// IPv4, the 32-bit value in host order (192.0.2.1 is 0xC000_0201).
    case v4(UInt32)
    /// IPv6, the 128-bit value as two host-order halves (high, low).
    case v6(UInt64, UInt64)

    /// Parses dotted-quad IPv4 or RFC 4291 IPv6 text (brackets and a `%zone` suffix are accepted and dropped).
    public init?(_ text: some StringProtocol) {
        var utf8 = Array(text.utf8)
        if utf8.first == UInt8(ascii: "["), utf8.last == UInt8(ascii: "]") { utf8 = Array(utf8.dropFirst().dropLast()) }
        if let percent = utf8.firstIndex(of: UInt8(ascii: "%")) { utf8.removeSubrange(percent...) }
        guard !utf8.isEmpty, utf8.count <= 45 else { return nil }
        if let v4 = Self.parseIPv4(utf8[...]) {
            self = .v4(v4)
            return
        }
        guard utf8.contains(UInt8(ascii: ":")) else { return nil }
        utf8.append(0)
        var raw = in6_addr()
        let ok = utf8.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { inet_pton(AF_INET6, $0.baseAddress, &raw) == 1 }
        }
        guard ok else { return nil }
        let bytes = withUnsafeBytes(of: raw) { [UInt8]($0) }
        self.init(bytes: bytes[...])
    }

    /// Strict dotted-quad: four decimal parts 0...255, no leading '+', at most 3 digits each.
    static func parseIPv4(_ utf8: ArraySlice<UInt8>) -> UInt32? {
        var value: UInt32 = 0, part: UInt32 = 0, digits = 0, dots = 0
        for byte in utf8 {
            if byte >= 0x30 && byte <= 0x39 {
                part = part * 10 + UInt32(byte - 0x30)
                digits += 1
                guard digits <= 3, part <= 255 else { return nil }
            } else if byte == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                value = value << 8 | part
                part = 0
                digits = 0
                dots += 1
            } else {
                return nil
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return value << 8 | part
    }

    /// Makes an address from 4 (IPv4) or 16 (IPv6) network-order bytes.
    public init?(bytes: ArraySlice<UInt8>) {
        switch bytes.count {
        case 4:
            var value: UInt32 = 0
            for byte in bytes { value = value << 8 | UInt32(byte) }
            self = .v4(value)
        case 16:
            var high: UInt64 = 0, low: UInt64 = 0
            for (index, byte) in bytes.enumerated() {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
            }
            self = .v6(high, low)
        default:
            return nil
        }
    }

    /// Network-order bytes: 4 for IPv4, 16 for IPv6.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .v4(let value):
            out.reserveCapacity(4)
            for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
        case .v6(let high, let low):
            out.reserveCapacity(16)
            for half in [high, low] {
                for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: half >> UInt64(shift))) }
            }
        }
        return out
    }

    public var isIPv4: Bool { if case .v4 = self { return true } else { return false } }

    public var isLoopback: Bool {
        switch self {
        case .v4(let value): return value >> 24 == 127
        case .v6(let high, let low): return high == 0 && low == 1
        }
    }

    public var isLinkLocal: Bool {
        switch self {
        case .v4(let value): return value >> 16 == 0xA9FE
        case .v6(let high, _): return high >> 54 == 0x3FA  // fe80::/10
        }
    }

    public var isUnspecified: Bool {
        switch self {
        case .v4(let value): return value == 0
        case .v6(let high, let low): return high == 0 && low == 0
        }
    }

    /// Private-use (RFC 1918) and unique-local (fc00::/7) addresses.
    public var isPrivate: Bool {
        switch self {
        case .v4(let value):
            return value >> 24 == 10 || value >> 20 == 0xAC1 || value >> 16 == 0xC0A8
        case .v6(let high, _):
            return high >> 57 == 0x7E
        }
    }

    public var description: String {
        switch self {
        case .v4(let value):
            return "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
        case .v6:
            var raw = in6_addr()
            let source = bytes
            withUnsafeMutableBytes(of: &raw) { $0.copyBytes(from: source) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count)) != nil else { return "::" }
            return buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        }
    }
}

/// An IP address and a port: where a UDP datagram comes from or goes to.
public struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// Parses `1.2.3.4:5678` or `[::1]:5678`.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = text[..<colon]
        if host.contains(":") && !(host.hasPrefix("[") && host.hasSuffix("]")) { return nil }
        guard let ip = IPAddress(host) else { return nil }
        self.init(ip: ip, port: port)
    }

    public var description: String {
        ip.isIPv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)"
    }
}
