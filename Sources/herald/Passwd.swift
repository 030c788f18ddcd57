import ArgumentParser
import Foundation
import SMTPServer

struct Passwd: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a password hash for [[user]] password_hash; the password is read from stdin.")

    @Option(help: "PBKDF2-SHA256 iterations.")
    var iterations: Int = PasswordHash.defaultIterations

    func run() throws {
        guard (1000...10_000_000).contains(iterations) else {
            throw ValidationError("--iterations must be between 1000 and 10000000")
        }
        var password = readLine(strippingNewline: true) ?? ""
        if password.hasSuffix("\r") { password.removeLast() }
        guard !password.isEmpty else { fail("no password on stdin") }
        print(PasswordHash.make(password: password, iterations: iterations))
    }
}
