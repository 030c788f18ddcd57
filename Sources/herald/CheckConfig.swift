import ArgumentParser
import Foundation
import Herald

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration file and print a summary.")

    @OptionGroup var options: ConfigOption

    func run() throws {
        let config = try options.load()
        print("config ok: \(options.config)")
        print("hostname: \(config.hostname)")
        print("spool: \(config.spoolPath)")
        for l in config.listeners {
            let nets = l.trustedNetworks.map(\.description).joined(separator: ",")
            print("listener: \(l.host):\(l.port) role=\(l.role.rawValue) tls=\(l.tls.rawValue) trusted=[\(nets)]")
        }
        print("users: \(config.users.map { u in u.tenant.map { "\(u.name) (tenant \($0))" } ?? u.name }.joined(separator: ", "))")
        for route in config.delivery.routes where route.username != nil && !route.tlsVerify && route.tls != .off {
            print("warning: route \(route.pattern) sends its password over TLS without checking the certificate "
                  + "(tls_verify = false): anyone in the path can take it")
        }
        if let bounce = config.bounce {
            print("bounce: \(bounce.domains.joined(separator: ", ")); \(bounce.classifier.classes.count) classes; "
                  + "\(bounce.softBounces.limit) soft bounces in \(bounce.softBounces.days) days suppress")
            if config.databaseURL == nil {
                print("warning: [bounce] needs the campaign database ([database] url or HERALD_DATABASE_URL); "
                      + "without it herald serve does not process bounces")
            }
        }
        for key in config.dkimKeys {
            print("dkim: \(key.recordName) \(key.algorithm.rawValue)")
        }
        if config.listeners.contains(where: { $0.tls != .off }) {
            for path in [config.tlsCertificate, config.tlsPrivateKey].compactMap({ $0 })
            where !FileManager.default.isReadableFile(atPath: path) {
                print("warning: \(path) is not readable: STARTTLS will answer 454")
            }
        }
    }
}
