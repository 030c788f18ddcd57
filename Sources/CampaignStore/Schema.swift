/// The campaign store's schema, as versioned migrations (``Migrator`` applies them).
///
/// Rules the schema keeps:
/// - Every tenant-owned table carries `tenant_id`, and every store query filters on it.
///   Rows that point at another tenant-owned row do so through a composite foreign key
///   `(tenant_id, x_id)` where the volume allows, so that even a buggy query cannot
///   attach one tenant's rows to another's campaign.
/// - Except the two bulk tables, `subscribers` and `list_members` (a million rows per
///   import): they carry no foreign key. A foreign key is checked by a per-row trigger,
///   and measured on a 100,000-row import those checks were 45% of the time (the three
///   of them ~0.8 s of 1.9 s). The store keeps them consistent itself: list and
///   subscriber deletions delete memberships in the same transaction, an import or an
///   upsert holds a `FOR KEY SHARE` lock on the list while it adds members, and every
///   read joins memberships to subscribers of the same tenant.
/// - Ids are `bigint` identities: compact, and ordered, which keyset pagination and the
///   expansion chunks (`first_subscriber_id … last_subscriber_id`) rely on.
/// - Email addresses are stored lower-cased (the whole address: mailbox providers treat
///   local parts case-insensitively, and so do list tools), unique per tenant. No
///   `citext`: no extension to install, and a plain b-tree index serves the lookups.
/// - Timestamps are `timestamptz`; connections run in UTC.
///
/// A released migration is never edited: a change is a new migration.
public enum Schema {
    public static let migrations: [Migration] = [
        Migration(version: 1, name: "campaign store", sql: version1),
        Migration(version: 2, name: "segments and retries", sql: version2),
        Migration(version: 3, name: "campaigns end with their mail", sql: version3),
        Migration(version: 4, name: "postmaster holds", sql: version4),
        Migration(version: 5, name: "suppression ids", sql: version5),
        Migration(version: 6, name: "bounce and complaint events", sql: version6),
        Migration(version: 7, name: "tenant dkim keys and campaign max attempts", sql: version7),
        Migration(version: 8, name: "open and click tracking", sql: version8),
        Migration(version: 9, name: "tenant limits and submission quotas", sql: version9),
        Migration(version: 10, name: "webhooks", sql: version10),
        Migration(version: 11, name: "smtp users", sql: version11),
    ]

    /// The newest version this build knows.
    public static var latestVersion: Int { migrations.map(\.version).max() ?? 0 }

    static let version1 = """
        CREATE TABLE tenants (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
            created_at  timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX tenants_name_key ON tenants (lower(name));

        -- API keys are stored as the SHA-256 of the key (hex); the key itself is shown
        -- once, at creation. `prefix` (the first characters) identifies a key to people.
        CREATE TABLE api_keys (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            key_hash    text NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),
            prefix      text NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            revoked_at  timestamptz
        );
        CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

        CREATE TABLE lists (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, id)
        );

        -- No foreign keys on subscribers and list_members: see Schema's comment.
        CREATE TABLE subscribers (
            id          bigint GENERATED ALWAYS AS IDENTITY,
            tenant_id   bigint NOT NULL,
            email       text NOT NULL CHECK (email = lower(email) AND email LIKE '_%@_%'),
            name        text,
            first_name  text,
            last_name   text,
            attributes  jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(attributes) = 'object'),
            status      text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'unsubscribed', 'bounced', 'complained')),
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, email)
        );

        CREATE TABLE list_members (
            tenant_id      bigint NOT NULL,
            list_id        bigint NOT NULL,
            subscriber_id  bigint NOT NULL,
            created_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (list_id, subscriber_id)
        );
        CREATE INDEX list_members_subscriber ON list_members (subscriber_id);

        CREATE TABLE campaigns (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 500),
            from_address  text NOT NULL,
            reply_to      text,
            subject       text NOT NULL,
            html          text,
            text          text,
            list_ids      bigint[] NOT NULL DEFAULT '{}',
            segment       jsonb,
            send_rate     text,
            send_window   jsonb,
            time_zone     text NOT NULL DEFAULT 'UTC',
            send_at       timestamptz,
            deadline      timestamptz,
            status        text NOT NULL DEFAULT 'draft'
                          CHECK (status IN ('draft', 'scheduled', 'sending', 'paused', 'cancelled', 'sent', 'expired')),
            started_at    timestamptz,
            finished_at   timestamptz,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, id),
            CHECK (html IS NOT NULL OR text IS NOT NULL),
            CHECK (deadline IS NULL OR send_at IS NULL OR deadline > send_at)
        );
        CREATE INDEX campaigns_tenant ON campaigns (tenant_id, id);
        CREATE INDEX campaigns_due ON campaigns (send_at) WHERE status = 'scheduled';

        -- Expansion work units, claimed with SELECT … FOR UPDATE SKIP LOCKED so that
        -- several Herald nodes share a campaign and each chunk is expanded once.
        CREATE TABLE campaign_chunks (
            tenant_id            bigint NOT NULL,
            campaign_id          bigint NOT NULL,
            chunk_no             integer NOT NULL,
            first_subscriber_id  bigint NOT NULL,
            last_subscriber_id   bigint NOT NULL,
            claimed_by           text,
            claimed_at           timestamptz,
            done                 boolean NOT NULL DEFAULT false,
            done_at              timestamptz,
            PRIMARY KEY (campaign_id, chunk_no),
            FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE,
            CHECK (first_subscriber_id <= last_subscriber_id)
        );
        CREATE INDEX campaign_chunks_pending ON campaign_chunks (campaign_id, chunk_no) WHERE NOT done;

        -- One row per recipient once expanded: the durable checkpoint (written after the
        -- spool commit) and the per-recipient outcome. No foreign key to subscribers: a
        -- campaign's history outlives a deleted subscriber.
        CREATE TABLE campaign_recipients (
            tenant_id      bigint NOT NULL,
            campaign_id    bigint NOT NULL,
            subscriber_id  bigint NOT NULL,
            state          text NOT NULL DEFAULT 'queued'
                           CHECK (state IN ('pending', 'queued', 'skipped', 'sent', 'deferred', 'bounced', 'failed', 'cancelled')),
            queue_id       text,
            reason         text,
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (campaign_id, subscriber_id),
            FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
        );
        CREATE INDEX campaign_recipients_state ON campaign_recipients (campaign_id, state);

        CREATE TABLE campaign_counters (
            tenant_id     bigint NOT NULL,
            campaign_id   bigint PRIMARY KEY,
            total         bigint NOT NULL DEFAULT 0,
            expanded      bigint NOT NULL DEFAULT 0,
            skipped       bigint NOT NULL DEFAULT 0,
            sent          bigint NOT NULL DEFAULT 0,
            deferred      bigint NOT NULL DEFAULT 0,
            bounced       bigint NOT NULL DEFAULT 0,
            failed        bigint NOT NULL DEFAULT 0,
            unsubscribed  bigint NOT NULL DEFAULT 0,
            updated_at    timestamptz NOT NULL DEFAULT now(),
            FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
        );

        -- Addresses a tenant must not mail again, whatever list they are on.
        CREATE TABLE suppressions (
            tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            email        text NOT NULL CHECK (email = lower(email)),
            reason       text NOT NULL CHECK (reason IN ('unsubscribed', 'bounced', 'complained', 'manual')),
            campaign_id  bigint,
            created_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (tenant_id, email)
        );
        """

    /// Segments are compiled to a `jsonpath` kept next to their JSON (``Segment``), so
    /// every query of a campaign's recipients applies the same filter. Retry chunks
    /// (``CampaignStore/retryFailed(tenant:id:)``) expand only recipients marked
    /// `pending`, under queue ids whose time part is the chunk's own `id_time`.
    static let version2 = """
        ALTER TABLE campaigns ADD COLUMN segment_path jsonpath;
        ALTER TABLE campaign_chunks ADD COLUMN retry boolean NOT NULL DEFAULT false;
        ALTER TABLE campaign_chunks ADD COLUMN id_time timestamptz;
        """

    /// A campaign stays `sending` until every recipient has a final outcome; a cancel
    /// records the recipients it stops as `cancelled` (counted here, like the others).
    /// Campaigns marked `sent` by an earlier version when their expansion finished go
    /// back to `sending` while recipients still wait, so they finish with their mail.
    static let version3 = """
        ALTER TABLE campaign_counters ADD COLUMN cancelled bigint NOT NULL DEFAULT 0;
        UPDATE campaigns c SET status = 'sending', finished_at = NULL
        WHERE c.status = 'sent' AND EXISTS (SELECT 1 FROM campaign_recipients r
                                            WHERE r.campaign_id = c.id AND r.state IN ('queued', 'deferred'));
        """

    /// A recipient whose message the postmaster put on hold (`herald queue hold`) is
    /// `held`, still waiting (a release makes it `queued` again), and counted in `held`.
    static let version4 = """
        ALTER TABLE campaign_recipients DROP CONSTRAINT campaign_recipients_state_check;
        ALTER TABLE campaign_recipients ADD CONSTRAINT campaign_recipients_state_check
            CHECK (state IN ('pending', 'queued', 'skipped', 'sent', 'deferred', 'held', 'bounced', 'failed', 'cancelled'));
        ALTER TABLE campaign_counters ADD COLUMN held bigint NOT NULL DEFAULT 0;
        """

    /// Suppressions get a number, in the order they were made, for keyset pagination of
    /// `GET /v1/suppressions` (existing rows are numbered when the column is added).
    static let version5 = """
        ALTER TABLE suppressions ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY;
        CREATE UNIQUE INDEX suppressions_tenant_id_id ON suppressions (tenant_id, id);
        """

    /// Bounces and complaints that arrive after delivery (``BounceStore``): one row per
    /// event, numbered for keyset pagination. `source` + `seq` (the spool id of the
    /// report Herald consumed and the event's place in it) is unique, so a report
    /// processed twice (a crash after the database commit, before the spool knew) is
    /// recorded and acted on once. `campaign_counters.complained` counts complaints.
    static let version6 = """
        CREATE TABLE bounce_events (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            campaign_id    bigint,
            subscriber_id  bigint,
            email          text NOT NULL CHECK (email = lower(email)),
            type           text NOT NULL CHECK (type IN ('bounce', 'complaint')),
            category       text NOT NULL,
            hard           boolean NOT NULL,
            status         text,
            diagnostic     text,
            reporter       text,
            suppressed     boolean NOT NULL DEFAULT false,
            source         text NOT NULL,
            seq            integer NOT NULL,
            received_at    timestamptz NOT NULL DEFAULT now(),
            UNIQUE (source, seq)
        );
        CREATE INDEX bounce_events_tenant ON bounce_events (tenant_id, id);
        CREATE INDEX bounce_events_soft ON bounce_events (tenant_id, email, received_at) WHERE type = 'bounce' AND NOT hard;
        ALTER TABLE campaign_counters ADD COLUMN complained bigint NOT NULL DEFAULT 0;
        """

    /// DKIM keys made over the API (``DKIMKeyStore``): the private key sealed with
    /// AES-256-GCM (``SecretSealer``), the public TXT record in clear. A campaign's own
    /// `max_attempts` (its messages carry it in their send policy).
    static let version7 = """
        CREATE TABLE dkim_keys (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id    bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            domain       text NOT NULL CHECK (domain = lower(domain)),
            selector     text NOT NULL CHECK (selector = lower(selector)),
            algorithm    text NOT NULL CHECK (algorithm IN ('rsa-sha256', 'ed25519-sha256')),
            private_key  text NOT NULL,
            record       text NOT NULL,
            created_at   timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, domain, selector)
        );
        ALTER TABLE campaigns ADD COLUMN max_attempts integer CHECK (max_attempts BETWEEN 1 AND 100);
        """

    /// Open and click tracking (``TrackingStore``): per-campaign switches, and one row
    /// per open or click (no IP address or user agent is kept).
    static let version8 = """
        ALTER TABLE campaigns ADD COLUMN track_opens boolean NOT NULL DEFAULT false,
                              ADD COLUMN track_clicks boolean NOT NULL DEFAULT false;
        CREATE TABLE tracking_events (
            id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            campaign_id    bigint NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            subscriber_id  bigint NOT NULL,
            kind           text NOT NULL CHECK (kind IN ('open', 'click')),
            url            text,
            at             timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX tracking_events_campaign ON tracking_events (campaign_id, kind, subscriber_id);
        """

    /// A tenant's limits (``TenantLimitsStore``), set by the operator: the delivery rate
    /// and connections the queue manager applies, and the submission quotas; and the
    /// messages each tenant submitted, counted per minute (`minute`: minutes since the
    /// epoch) while it has a quota, for the sliding windows.
    static let version9 = """
        CREATE TABLE tenant_limits (
            tenant_id        bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
            rate             text,
            max_connections  integer CHECK (max_connections > 0),
            quota            text,
            daily_quota      integer CHECK (daily_quota > 0),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE tenant_usage (
            tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            minute     bigint NOT NULL,
            messages   integer NOT NULL CHECK (messages >= 0),
            PRIMARY KEY (tenant_id, minute)
        );
        CREATE INDEX tenant_usage_minute ON tenant_usage (minute);
        """

    /// Webhooks (``WebhookStore``): a tenant's endpoints (the signing secret sealed like
    /// DKIM keys), the outbox of events (`key` is unique per tenant, so an event recorded
    /// twice, e.g. replayed from the delivery log after a crash, is stored once), and one
    /// delivery row per event and subscribed endpoint, which the dispatcher leases,
    /// retries and finally marks `delivered` or `failed`.
    static let version10 = """
        CREATE TABLE webhook_endpoints (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            url              text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
            description      text NOT NULL DEFAULT '',
            events           text[] NOT NULL,
            secret           text NOT NULL,
            enabled          boolean NOT NULL DEFAULT true,
            disabled_reason  text,
            disabled_at      timestamptz,
            failing_since    timestamptz,
            created_at       timestamptz NOT NULL DEFAULT now(),
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, id);
        CREATE TABLE webhook_events (
            id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            type        text NOT NULL,
            key         text NOT NULL,
            data        text NOT NULL,
            occurred_at timestamptz NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, key)
        );
        CREATE INDEX webhook_events_created ON webhook_events (created_at);
        CREATE TABLE webhook_deliveries (
            id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id        bigint NOT NULL,
            endpoint_id      bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
            event_id         bigint NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
            state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
            attempts         integer NOT NULL DEFAULT 0,
            next_attempt_at  timestamptz NOT NULL DEFAULT now(),
            leased_until     timestamptz,
            last_attempt_at  timestamptz,
            response_status  integer,
            last_error       text,
            duration_ms      integer,
            created_at       timestamptz NOT NULL DEFAULT now(),
            UNIQUE (endpoint_id, event_id)
        );
        CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE state = 'pending';
        CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
        CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
        """

    /// SMTP AUTH users made over the API (``SMTPUserStore``): each belongs to one tenant,
    /// and its name is unique on the whole server, ignoring case (the listener does not
    /// know the tenant before AUTH). The password is kept only as a `herald passwd` hash.
    static let version11 = """
        CREATE TABLE smtp_users (
            id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id            bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            username             text NOT NULL CHECK (length(username) BETWEEN 1 AND 64),
            password_hash        text NOT NULL,
            created_at           timestamptz NOT NULL DEFAULT now(),
            password_changed_at  timestamptz NOT NULL DEFAULT now(),
            last_used_at         timestamptz
        );
        CREATE UNIQUE INDEX smtp_users_username ON smtp_users (lower(username));
        CREATE INDEX smtp_users_tenant ON smtp_users (tenant_id, id);
        """
}
