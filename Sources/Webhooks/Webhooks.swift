/// Webhooks (issue #14): a tenant's endpoints receive its mail events as signed JSON POSTs.
///
/// Summary: events go into a PostgreSQL outbox (``CampaignStore/WebhookStore``), and the
/// ``WebhookDispatcher`` POSTs each one to every subscribed endpoint until it answers 2xx.
///
/// Description:
/// - Sources. Delivery outcomes (`delivered`, `deferred`, `bounced`, `failed`) and
///   acceptances (`accepted`) reach the ``WebhookRecorder`` from the queue manager's and
///   the spool's hooks, which must not wait: it buffers them and writes batches (one
///   transaction each) at most every ``WebhookSettings/flushInterval``. Bounce and
///   complaint reports, unsubscribes, opens and clicks are database changes already:
///   their events are inserted in the same transaction as the change.
/// - Durability (why every event is delivered at least once). An event is safe once it
///   is in the outbox table. The recorder's buffer is not: a SIGKILL loses up to one
///   interval of it. So the recorder keeps a checkpoint (the time of the newest event it
///   wrote) and at start-up replays the delivery log (written before the hook is
///   called) from a margin before it, and the spool's recovered messages (a recipient
///   not yet attempted was accepted; the first attempt's log line stands for an
///   acceptance too). Replaying writes some events twice: each event has a
///   de-duplication key (queue id, recipient, result, attempt), unique per tenant in the
///   outbox, so the second copy is dropped. A delivery is marked `delivered` only after
///   the endpoint answered 2xx; a crash between the answer and that update sends it
///   again, with the same `Herald-Event-Id` (receivers de-duplicate on it).
/// - Sending. Deliveries are leased from the table (several nodes share it), at most
///   ``WebhookSettings/concurrencyPerEndpoint`` per endpoint and node at once, retried
///   with exponential back-off and jitter (``WebhookBackoff``). An endpoint that has not
///   answered 2xx for ``WebhookSettings/disableAfter`` is disabled with the reason;
///   `PATCH {"enabled": true}` re-enables it and its pending deliveries are due at once.
///
/// Security: endpoint URLs are the tenant's input. Only `http` and `https`; no
/// redirects are followed; every request has a time-out; and unless
/// `[webhooks] allow_private_addresses` is set, a host that resolves to a loopback,
/// private, link-local or otherwise non-public address is refused at each attempt
/// (``WebhookAddressPolicy``), so an API key cannot make Herald probe its own network.
/// XXX: the address is checked, then the HTTP client resolves the name again; a DNS
/// answer that changes in between (rebinding) is not caught.
///
/// Diagnostics: a failed attempt is recorded on the delivery (status, error) and is not
/// logged one by one; disabling an endpoint and database errors are logged.
public enum Webhooks {}
