import Logging
import ServiceLifecycle

/// Campaign expansion as a service of the node: at start and every ``interval``, the
/// campaigns that are `sending` with chunks left are taken up (after a restart, and
/// chunks whose lease expired on a dead node). A graceful shutdown stops the loop; a
/// chunk cut short is expanded again from its checkpoint by whichever node takes it.
public struct CampaignExpansionService: Service {
    public let expander: CampaignExpander
    public let interval: Duration
    let logger: Logger

    public init(expander: CampaignExpander, interval: Duration = .seconds(30),
                logger: Logger = Logger(label: "herald.campaigns.expansion")) {
        self.expander = expander
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await expander.resumeAll()
                } catch {
                    logger.error("cannot resume campaigns", metadata: ["error": "\(error)"])
                }
                do { try await Task.sleep(for: interval) } catch { return }
            }
        }
    }
}

/// ``CampaignScheduler`` as a service of the node (stops on graceful shutdown).
public struct CampaignSchedulerService: Service {
    public let scheduler: CampaignScheduler

    public init(scheduler: CampaignScheduler) { self.scheduler = scheduler }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await scheduler.run() }
    }
}
