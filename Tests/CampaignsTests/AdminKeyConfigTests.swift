import Herald
import Testing

/// `[[admin_key]]` in the config (the admin API's keys; the config tests live with the
/// other `HeraldConfig.parse` tests in this target).
@Suite("Admin key configuration")
struct AdminKeyConfigTests {
    static let digest = String(repeating: "ab", count: 32)

    @Test func namedAndDefaultNamedKeys() throws {
        let config = try HeraldConfig.parse("""
            [[admin_key]]
            name = "postmaster"
            sha256 = "\(Self.digest.uppercased())"
            [[admin_key]]
            sha256 = "\(String(repeating: "cd", count: 32))"
            """, source: "test.toml")
        #expect(config.adminKeys.map(\.name) == ["postmaster", "admin1"])
        #expect(config.adminKeys.first?.sha256 == Self.digest, "stored lower-cased")
        #expect(try HeraldConfig.parse("", source: "test.toml").adminKeys.isEmpty, "none by default")
    }

    @Test func badDigestOrUnknownKeyIsAnErrorNamingIt() {
        for (text, expected) in [
            ("[[admin_key]]\nsha256 = \"abc\"", "admin_key[0].sha256: 64 hex digits"),
            ("[[admin_key]]\nsha256 = \"\(String(repeating: "zz", count: 32))\"", "admin_key[0].sha256"),
            ("[[admin_key]]\nsha256 = \"\(Self.digest)\"\ntenant = \"a\"", "unknown key"),
        ] {
            do {
                _ = try HeraldConfig.parse(text, source: "test.toml")
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.description.contains(expected), "\(error.description)")
            }
        }
    }
}
