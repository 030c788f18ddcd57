import Foundation
import NIOPosix
import SMTPServer
#if canImport(Glibc)
import Glibc
#endif

/// Which hosts a webhook may be sent to. Unless private addresses are allowed
/// (`[webhooks] allow_private_addresses`, for tests and for receivers on the operator's
/// own network), a host that is, or resolves to, any address in ``blocked`` is refused:
/// an API key must not turn Herald into a probe of the network it runs in.
public struct WebhookAddressPolicy: Sendable {
    public var allowPrivateAddresses: Bool

    public init(allowPrivateAddresses: Bool) {
        self.allowPrivateAddresses = allowPrivateAddresses
    }

    /// Loopback, "this network", private (RFC 1918, RFC 6598 shared, IPv6 unique local),
    /// link-local, multicast, broadcast and reserved ranges, IPv4 and IPv6.
    public static let blocked: [IPNetwork] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
        "::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "64:ff9b::/96",
    ].compactMap(IPNetwork.init)

    public static func isBlocked(_ address: String) -> Bool {
        blocked.contains { $0.contains(address) }
    }

    /// Why `host` may not be used (nil: it may). Resolves names on NIO's thread pool.
    public func refusal(host: String) async -> String? {
        if allowPrivateAddresses { return nil }
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        let addresses = try? await NIOThreadPool.singleton.runIfActive { Self.resolve(bare) }
        guard let addresses, !addresses.isEmpty else { return "cannot resolve \(host)" }
        if let bad = addresses.first(where: Self.isBlocked) {
            return "\(host) resolves to \(bad), a private or reserved address (see [webhooks] allow_private_addresses)"
        }
        return nil
    }

    /// The host's addresses as text (an address literal is its own answer).
    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var node: UnsafeMutablePointer<addrinfo>? = first
        while let n = node {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(n.pointee.ai_addr, n.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0,
                           NI_NUMERICHOST) == 0 {
                addresses.append(String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) },
                                        as: UTF8.self))
            }
            node = n.pointee.ai_next
        }
        return addresses
    }
}
