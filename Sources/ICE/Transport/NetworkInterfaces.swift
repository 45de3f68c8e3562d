#if canImport(Glibc)
import Glibc
#endif

/// One address of a local network interface.
public struct NetworkInterfaceAddress: Hashable, Sendable {
    public var interfaceName: String
    public var address: IPAddress
    /// The IPv6 scope id (interface index) for link-local addresses, else 0.
    public var scopeID: UInt32

    public var isLoopback: Bool { address.isLoopback }
    public var isLinkLocal: Bool { address.isLinkLocal }
}

/// Which local addresses ICE gathers host candidates on.
public struct InterfaceFilter: Sendable, Hashable {
    public var includeLoopback: Bool
    public var includeLinkLocal: Bool
    public var includeIPv6: Bool
    /// When non-empty, only these addresses are used (for tests and for servers with a public address).
    public var onlyAddresses: Set<IPAddress>

    public init(includeLoopback: Bool = false, includeLinkLocal: Bool = false, includeIPv6: Bool = true, onlyAddresses: Set<IPAddress> = []) {
        self.includeLoopback = includeLoopback
        self.includeLinkLocal = includeLinkLocal
        self.includeIPv6 = includeIPv6
        self.onlyAddresses = onlyAddresses
    }

    /// Loopback only: what tests on one host use.
    public static let loopbackOnly = InterfaceFilter(includeLoopback: true, onlyAddresses: [.v4(0x7F00_0001)])

    public func admits(_ entry: NetworkInterfaceAddress) -> Bool {
        if !onlyAddresses.isEmpty { return onlyAddresses.contains(entry.address) }
        if entry.address.isUnspecified { return false }
        if entry.isLoopback && !includeLoopback { return false }
        if entry.isLinkLocal && !includeLinkLocal { return false }
        if !entry.address.isIPv4 && !includeIPv6 { return false }
        return true
    }
}

public enum NetworkInterfaces {
    /// Every IPv4 and IPv6 address of every interface that is up (getifaddrs).
    public static func addresses() -> [NetworkInterfaceAddress] {
        var head: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&head) == 0, let first = head else { return [] }
        defer { freeifaddrs(head) }
        var result: [NetworkInterfaceAddress] = []
        var cursor: UnsafeMutablePointer<ifaddrs>? = first
        while let entry = cursor {
            defer { cursor = entry.pointee.ifa_next }
            guard let sockaddrPointer = entry.pointee.ifa_addr,
                  entry.pointee.ifa_flags & UInt32(IFF_UP) != 0 else { continue }
            let name = String(cString: entry.pointee.ifa_name)
            switch Int32(sockaddrPointer.pointee.sa_family) {
            case AF_INET:
                let address = sockaddrPointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                result.append(NetworkInterfaceAddress(interfaceName: name, address: .v4(UInt32(bigEndian: address.sin_addr.s_addr)), scopeID: 0))
            case AF_INET6:
                let address = sockaddrPointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                let bytes = withUnsafeBytes(of: address.sin6_addr) { [UInt8]($0) }
                if let ip = IPAddress(bytes: bytes[...]) {
                    result.append(NetworkInterfaceAddress(interfaceName: name, address: ip, scopeID: ip.isLinkLocal ? address.sin6_scope_id : 0))
                }
            default:
                continue
            }
        }
        return result
    }
}
