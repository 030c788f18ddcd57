import ArgumentParser
import Foundation
import SMTPServer

/// `herald passwd`: a password hash for `[[user]] password_hash`. With `--user` (and
/// `--tenant`), the whole `[[user]]` table to paste into the config, the user's tenant
/// included: its mail is tagged with that tenant and counts against its quota.
struct Passwd: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a password hash for [[user]] password_hash (or, with --user, the whole [[user]] table); "
            + "the password is read from stdin.")

    @Option(help: "PBKDF2-SHA256 iterations.")
    var iterations: Int = PasswordHash.defaultIterations

    @Option(help: "Print a [[user]] table for this user name instead of the hash alone.")
    var user: String?

    @Option(help: "With --user: the tenant the user's mail belongs to (a tenant's name).")
    var tenant: String?

    func validate() throws {
        guard (1000...10_000_000).contains(iterations) else {
            throw ValidationError("--iterations must be between 1000 and 10000000")
        }
        if let user, user.isEmpty || user.contains(where: { $0.isNewline }) {
            throw ValidationError("--user: give a user name")
        }
        if let tenant {
            guard user != nil else { throw ValidationError("--tenant goes with --user") }
            guard !tenant.isEmpty, !tenant.contains(where: { $0.isNewline }), Int64(tenant) == nil else {
                throw ValidationError("--tenant: give the tenant's name (not its number)")
            }
        }
    }

    func run() throws {
        var password = readLine(strippingNewline: true) ?? ""
        if password.hasSuffix("\r") { password.removeLast() }
        guard !password.isEmpty else { fail("no password on stdin") }
        let hash = PasswordHash.make(password: password, iterations: iterations)
        guard let user else {
            print(hash)
            return
        }
        print("[[user]]")
        print("name = \(Self.tomlString(user))")
        print("password_hash = \(Self.tomlString(hash))")
        if let tenant { print("tenant = \(Self.tomlString(tenant))") }
    }

    /// A TOML basic string.
    static func tomlString(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += String(format: "\\u%04X", scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
