import CampaignStore
import Delivery
import Foundation
import Testing
@testable import Webhooks

@Suite struct WebhookSignatureTests {
    let secret = Array("0123456789abcdef".utf8)
    let body = Array(#"{"id":"1"}"#.utf8)

    @Test func signsTimestampDotBody() {
        // The expected value is Python's hmac.new(secret, b"1700000000." + body, sha256).hexdigest().
        #expect(WebhookSignature.sign(secret: secret, timestamp: 1_700_000_000, body: body)
            == "t=1700000000,v1=d5f5834972cbc6cf5590800c46ccaa0cd6c16f19c0c73dbdf9b4c56390cbc2a3")
    }

    @Test func verifiesAndRefuses() {
        let now = Date(timeIntervalSince1970: 1_700_000_100)
        let header = WebhookSignature.sign(secret: secret, timestamp: 1_700_000_000, body: body)
        #expect(WebhookSignature.verify(header: header, secret: secret, body: body, now: now))
        #expect(!WebhookSignature.verify(header: header, secret: secret, body: body + [0x20], now: now))
        #expect(!WebhookSignature.verify(header: header, secret: Array("other".utf8), body: body, now: now))
        // Too old: a replay.
        #expect(!WebhookSignature.verify(header: header, secret: secret, body: body,
                                         now: Date(timeIntervalSince1970: 1_700_000_301)))
        #expect(!WebhookSignature.verify(header: "v1=00", secret: secret, body: body, now: now))
    }
}

@Suite struct WebhookBackoffTests {
    let backoff = WebhookBackoff(minimum: .seconds(10), maximum: .seconds(3600))

    @Test(arguments: [(1, 10), (2, 20), (3, 40), (5, 160), (9, 2560), (10, 3600), (1000, 3600)])
    func steps(attempt: Int, seconds: Int64) {
        #expect(backoff.step(afterAttempt: attempt) == .seconds(seconds))
    }

    @Test func jitterStaysBetweenHalfAndWhole() {
        #expect(backoff.delay(afterAttempt: 2, jitter: 0) == .seconds(10))
        #expect(backoff.delay(afterAttempt: 2, jitter: 1) == .seconds(20))
        for _ in 0..<100 {
            let d = backoff.delay(afterAttempt: 3)
            #expect(d >= .seconds(20) && d <= .seconds(40))
        }
    }
}

@Suite struct WebhookAddressPolicyTests {
    @Test(arguments: ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                      "::1", "fe80::1", "fd00::1", "::ffff:192.168.1.1", "::ffff:127.0.0.1"])
    func blocked(_ address: String) {
        #expect(WebhookAddressPolicy.isBlocked(address))
    }

    @Test(arguments: ["8.8.8.8", "1.1.1.1", "2001:4860:4860::8888", "172.32.0.1"])
    func allowed(_ address: String) {
        #expect(!WebhookAddressPolicy.isBlocked(address))
    }

    @Test func loopbackNamesAreRefusedUnlessAllowed() async {
        #expect(await WebhookAddressPolicy(allowPrivateAddresses: false).refusal(host: "127.0.0.1") != nil)
        #expect(await WebhookAddressPolicy(allowPrivateAddresses: false).refusal(host: "localhost") != nil)
        #expect(await WebhookAddressPolicy(allowPrivateAddresses: false).refusal(host: "[::1]") != nil)
        #expect(await WebhookAddressPolicy(allowPrivateAddresses: true).refusal(host: "127.0.0.1") == nil)
    }
}

@Suite struct WebhookRecorderMappingTests {
    func outcome(_ result: DeliveryOutcomeEvent.Result, tenant: String? = "7", code: Int? = nil, enhanced: String? = nil,
                 bounce: Bool = false) -> DeliveryOutcomeEvent {
        DeliveryOutcomeEvent(queueID: "Q1", recipient: "a@example.com", tenant: tenant, campaign: "3", result: result,
                             code: code, enhanced: enhanced, isBounceMessage: bounce, reply: "\(code ?? 0) x", attempt: 2)
    }

    @Test func resultsMapToEventTypes() {
        #expect(WebhookRecorder.event(outcome(.delivered, code: 250))?.type == .delivered)
        #expect(WebhookRecorder.event(outcome(.deferred, code: 451))?.type == .deferred)
        #expect(WebhookRecorder.event(outcome(.failed, code: 550, enhanced: "5.1.1"))?.type == .bounced)
        #expect(WebhookRecorder.event(outcome(.failed, code: 451, enhanced: "4.4.1"))?.type == .failed)
        #expect(WebhookRecorder.event(outcome(.expired, code: 451))?.type == .failed)
        for quiet in [DeliveryOutcomeEvent.Result.cancelled, .deleted, .held, .released] {
            #expect(WebhookRecorder.event(outcome(quiet)) == nil)
        }
    }

    @Test func onlyDatabaseTenantsMailMakesEvents() {
        #expect(WebhookRecorder.event(outcome(.delivered, tenant: nil)) == nil)
        #expect(WebhookRecorder.event(outcome(.delivered, tenant: "marketing")) == nil)
        #expect(WebhookRecorder.event(outcome(.delivered, bounce: true)) == nil)
        let event = WebhookRecorder.event(outcome(.delivered, code: 250))
        #expect(event?.tenant == TenantID(7))
        // The key names the outcome: the same outcome replayed from the log has the same key.
        #expect(event?.key == "Q1/a@example.com/delivered/2")
        #expect(event?.data["campaign_id"] == .int(3))
        #expect(event?.dataJSON.contains(#""queue_id":"Q1""#) == true)
    }
}
