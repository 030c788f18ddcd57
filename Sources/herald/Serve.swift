import ArgumentParser
import Foundation
import Herald
import Logging

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the Herald daemon.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let config = try options.load()
        let logFile = config.logPath.map { ($0 as NSString).appendingPathComponent("herald.log") }
        let factory = FileLogHandler.makeFactory(path: logFile)
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = factory(label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "herald")
        do {
            try await HeraldApp.serve(config: config, logger: logger)
        } catch {
            logger.critical("herald stopped: \(error)")
            fail("\(error)")
        }
    }
}
