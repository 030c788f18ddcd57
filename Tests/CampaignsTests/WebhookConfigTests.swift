import Foundation
import Testing

@testable import Herald
@testable import Webhooks

/// `[webhooks]`: defaults, every key, and bad values named in the error.
@Suite struct WebhookConfigTests {
    func parse(_ text: String) -> Result<HeraldConfig, ConfigError> {
        Result { () throws(ConfigError) -> HeraldConfig in try HeraldConfig.parse(text) }
    }

    @Test func defaults() throws {
        let s = try parse("").get().webhooks
        #expect(s.concurrencyPerEndpoint == 4 && s.maxInFlight == 64 && s.timeout == .seconds(10))
        #expect(s.backoff == WebhookBackoff(minimum: .seconds(10), maximum: .seconds(3600)))
        #expect(s.disableAfter == .seconds(3 * 86_400) && s.retryFor == .seconds(3 * 86_400))
        #expect(s.retention == .seconds(7 * 86_400) && s.flushInterval == .seconds(1))
        #expect(!s.allowPrivateAddresses)
    }

    @Test func everyKey() throws {
        let s = try parse("""
            [webhooks]
            concurrency = 2
            max_in_flight = 10
            timeout = "3s"
            min_backoff = "500ms"
            max_backoff = "2m"
            disable_after = "1d"
            retry_for = "12h"
            retention = "2d"
            flush_interval = "250ms"
            allow_private_addresses = true
            """).get().webhooks
        #expect(s.concurrencyPerEndpoint == 2 && s.maxInFlight == 10 && s.timeout == .seconds(3))
        #expect(s.backoff == WebhookBackoff(minimum: .milliseconds(500), maximum: .seconds(120)))
        #expect(s.disableAfter == .seconds(86_400) && s.retryFor == .seconds(43_200))
        #expect(s.retention == .seconds(172_800) && s.flushInterval == .milliseconds(250))
        #expect(s.allowPrivateAddresses)
    }

    @Test(arguments: [("concurrency = 0", "webhooks.concurrency"), ("timeout = \"soon\"", "webhooks.timeout"),
                      ("min_backoff = \"0s\"", "webhooks.min_backoff"), ("allow_private = true", "allow_private")])
    func badValuesAreNamed(line: String, key: String) {
        guard case .failure(let error) = parse("[webhooks]\n\(line)\n") else {
            Issue.record("\(line) was accepted")
            return
        }
        #expect(error.description.contains(key), "\(error)")
    }
}
