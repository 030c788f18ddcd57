// swift-tools-version:6.2
import PackageDescription

let package = Package(
    name: "Herald",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "herald", targets: ["herald"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/LebJe/TOMLKit.git", from: "0.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        // Webhook POSTs (already in the graph through HummingbirdTesting).
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenSSLCrypto",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CCares",
            pkgConfig: "libcares",
            providers: [.apt(["libc-ares-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(
            name: "MailFormat",
            dependencies: []
        ),
        .target(
            name: "DKIM",
            dependencies: ["COpenSSLCrypto"]
        ),
        .target(
            name: "SMTPCore",
            dependencies: ["MailFormat"]
        ),
        .target(
            name: "Spool",
            dependencies: [
                "MailFormat",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "SMTPServer",
            dependencies: [
                "DKIM", "SMTPCore", "MailFormat", "Spool", "COpenSSLCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "DNS",
            dependencies: [
                "CCares",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .target(
            name: "SMTPClient",
            dependencies: [
                "SMTPCore", "DNS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Delivery",
            dependencies: [
                "DKIM", "Spool", "SMTPClient", "DNS", "SMTPCore", "MailFormat",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        .target(
            name: "Postgres",
            dependencies: [
                "CLibPQ",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "Rendering",
            dependencies: [
                "MailFormat",
                "COpenSSLCrypto",
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        .target(
            name: "CampaignStore",
            dependencies: [
                "DKIM", "Postgres", "Rendering", "MailFormat", "Spool", "COpenSSLCrypto",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "Campaigns",
            dependencies: [
                "DKIM", "CampaignStore", "Delivery", "MailFormat", "Rendering", "Postgres", "Spool",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "Webhooks",
            dependencies: [
                "CampaignStore", "Campaigns", "Delivery", "MailFormat", "Postgres", "Rendering", "SMTPServer", "Spool",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "HTTPAPI",
            dependencies: [
                "Campaigns", "CampaignStore", "Rendering", "Postgres", "Spool", "Delivery",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            // The web console's files, compiled into the binary (``ConsoleUI``).
            resources: [.embedInCode("Console")]
        ),
        .target(
            name: "Herald",
            dependencies: [
                "DKIM", "MailFormat", "Spool", "SMTPServer", "DNS", "SMTPClient", "Delivery",
                "Postgres", "CampaignStore", "Campaigns", "HTTPAPI", "Webhooks",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "herald",
            dependencies: [
                "Herald", "DKIM", "Spool", "SMTPServer", "Delivery", "Postgres", "CampaignStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "HeraldTestSupport",
            dependencies: [
                "Spool", "SMTPCore", "Postgres", "CampaignStore", "Campaigns",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SMTPCoreTests", dependencies: ["SMTPCore"]),
        .testTarget(name: "MailFormatTests", dependencies: ["MailFormat", "HeraldTestSupport"]),
        .testTarget(name: "SpoolTests", dependencies: ["Spool", "HeraldTestSupport"]),
        .testTarget(name: "DNSTests", dependencies: ["DNS", "HeraldTestSupport"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "HeraldTestSupport"]),
        .testTarget(name: "RenderingTests", dependencies: ["Rendering", "HeraldTestSupport"]),
        .testTarget(
            name: "CampaignStoreTests",
            dependencies: ["CampaignStore", "Postgres", "HeraldTestSupport"]
        ),
        .testTarget(
            name: "WebhooksTests",
            dependencies: ["Webhooks", "CampaignStore", "Delivery", "Postgres", "HeraldTestSupport"]
        ),
        .testTarget(
            name: "CampaignsTests",
            dependencies: ["Campaigns", "CampaignStore", "Delivery", "Herald", "Postgres", "Rendering", "Spool", "Webhooks",
                           "HeraldTestSupport"]
        ),
        .testTarget(
            name: "HTTPAPITests",
            dependencies: [
                "HTTPAPI", "Campaigns", "CampaignStore", "Postgres", "Rendering", "Spool", "Delivery", "HeraldTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(
            name: "SMTPClientTests",
            dependencies: [
                "SMTPClient", "SMTPCore", "DNS", "HeraldTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "DeliveryTests",
            dependencies: [
                "Delivery", "Spool", "DNS", "SMTPClient", "HeraldTestSupport",
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ]
        ),
        .testTarget(
            name: "DKIMTests",
            dependencies: ["DKIM", "HeraldTestSupport"]
        ),
        .testTarget(
            name: "SMTPServerTests",
            dependencies: [
                "SMTPServer", "SMTPCore", "HeraldTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["Spool", "HeraldTestSupport"],
            resources: [.copy("Clients")]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Herald's own targets build with warnings as errors: a warning is either fixed or the
// code says why it stays. (Dependencies keep their own settings.)
for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + [.treatAllWarnings(as: .error)]
}
