import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A CIDR block such as `127.0.0.0/8` or `::1/128`, for `trusted_networks`.
public struct IPNetwork: Hashable, Sendable, CustomStringConvertible {
    public let address: [UInt8]   // 4 or 16 octets
    public let prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPNetwork.parseAddress(String(parts[0])) else { return nil }
        let maxBits = address.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...maxBits).contains(p) else { return nil }
            self.prefixLength = p
        } else {
            self.prefixLength = maxBits
        }
        self.address = address
    }

    public var description: String {
        if address.count == 4 { return address.map(String.init).joined(separator: ".") + "/\(prefixLength)" }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var a = in6_addr()
        withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: address) }
        inet_ntop(AF_INET6, &a, &buffer, socklen_t(buffer.count))
        let text = buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
        return String(decoding: text, as: UTF8.self) + "/\(prefixLength)"
    }

    /// Whether `text` (an IPv4 or IPv6 address, IPv4-mapped IPv6 included) lies inside.
    public func contains(_ text: String) -> Bool {
        guard var candidate = IPNetwork.parseAddress(text) else { return false }
        if candidate.count == 16 && address.count == 4 && candidate[0..<12] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF][...] {
            candidate = Array(candidate[12...])
        }
        guard candidate.count == address.count else { return false }
        var bits = prefixLength
        for i in 0..<address.count where bits > 0 {
            let take = min(8, bits)
            let mask: UInt8 = take == 8 ? 0xFF : ~(0xFF >> UInt8(take))
            if candidate[i] & mask != address[i] & mask { return false }
            bits -= take
        }
        return true
    }

    static func parseAddress(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
