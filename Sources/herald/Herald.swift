import ArgumentParser
import Foundation
import Herald

/// Herald's version, printed by `herald --version` as `herald <version>`. Raised by
/// hand with each release; the binary carries no commit id, so that a build whose
/// sources did not change stays a no-op (a stamped commit would recompile every time).
let heraldVersion = "0.4.0"

/// The `herald` command: the daemon and the postmaster's tools.
@main
struct HeraldCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "Herald, a high-volume SMTP sending gateway.",
        version: "herald \(heraldVersion)",
        subcommands: [Serve.self, Queue.self, TenantCommand.self, DKIMCommand.self, Passwd.self, CheckConfig.self])
}

/// `--config PATH`, shared by every command that reads the configuration.
struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file.")
    var config: String = "conf/herald.toml"

    func load() throws -> HeraldConfig {
        do {
            return try HeraldConfig.load(path: config)
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// Prints to stderr and exits with `code`.
func fail(_ message: String, code: Int32 = 1) -> Never {
    FileHandle.standardError.write(Data(("herald: " + message + "\n").utf8))
    exit(code)
}
