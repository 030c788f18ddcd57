import Foundation
import Testing

@testable import DNS

/// With `[dns] servers = []` the resolver uses the system's name servers.
@Suite struct SystemConfigurationTests {
    @Test("c-ares reads the name servers of /etc/resolv.conf")
    func readsResolvConf() throws {
        let text = try String(contentsOfFile: "/etc/resolv.conf", encoding: .utf8)
        let listed = text.split(separator: "\n").filter {
            $0.split(whereSeparator: { $0 == " " || $0 == "\t" }).first == "nameserver"
        }.count
        // Without any, c-ares falls back to one: the local host.
        let expected = max(listed, 1)
        let found = CAresEngine.systemServerCount()
        #expect(expected <= 3 ? found == expected : found >= 3, "\(found) servers found, \(listed) listed")
    }
}
