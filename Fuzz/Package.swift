// swift-tools-version:6.2
// Herald's fuzzing package (issue #12): libFuzzer harnesses for the pure parsers.
//
// This package stands apart from Herald's own manifest on purpose: the root package has
// no library products (only the `herald` executable), so `.package(path: "..")` could
// not give us SMTPCore or MailFormat, and resolving it would drag in NIO, Hummingbird
// and friends. Instead `Sources/` here holds *symlinks* to Herald's source folders and
// files (SwiftPM only accepts target paths inside the package root, and it follows
// symlinks), and each harness is its own executable target. See README.md.
//
// Every target is built with `-sanitize=fuzzer,address`: the code under test (the
// symlinked Herald modules) gets libFuzzer's coverage instrumentation and ASan, and the
// harnesses link libFuzzer's runtime (their `@main` starts its driver). Build only
// through `scripts/fuzz`, or `swift build -c release` in this directory.
import PackageDescription

let sanitizers = ["-sanitize=fuzzer,address"]

/// Compile settings shared by every target (Herald's copies included, so that the
/// fuzzer sees their coverage).
let instrumented: [SwiftSetting] = [.unsafeFlags(sanitizers)]

/// A harness: one executable target exporting `LLVMFuzzerTestOneInput`, whose `@main`
/// hands it to libFuzzer's driver (FuzzSupport's `runLibFuzzer`).
func harness(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(
        name: name,
        dependencies: dependencies + ["FuzzSupport"],
        swiftSettings: [.unsafeFlags(sanitizers + ["-parse-as-library"])],
        linkerSettings: [.unsafeFlags(sanitizers + ["-use-ld=lld"])]
    )
}

let package = Package(
    name: "HeraldFuzz",
    targets: [
        // Herald's pure modules, compiled from the very same files (symlinks).
        .target(name: "MailFormat", swiftSettings: instrumented),
        .target(name: "SMTPCore", dependencies: ["MailFormat"], swiftSettings: instrumented),
        // libFuzzer's LLVMFuzzerRunDriver, declared for Swift (see FuzzSupport).
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], swiftSettings: instrumented),

        harness("FuzzSMTPCommand", ["SMTPCore", "MailFormat"]),
        harness("FuzzDataReader", ["SMTPCore"]),
        // ReplyParser.swift (from SMTPClient, which otherwise needs NIO) is compiled into
        // the harness module itself.
        harness("FuzzReplyParser", ["SMTPCore"]),
        harness("FuzzMIME", ["MailFormat"]),
        harness("FuzzAddress", ["SMTPCore", "MailFormat"]),
        // DNSMessage.swift (from DNS, which otherwise needs c-ares): internal types, so
        // the file is compiled into the harness module.
        harness("FuzzDNSMessage", []),
        // CSVReader.swift (from CampaignStore, which otherwise needs libpq).
        harness("FuzzCSV", []),
        // HTMLToText, TemplateChecker (+ TemplateIssue), MIMEEncoding, MailAddress from
        // Rendering (which otherwise needs swift-mustache and OpenSSL).
        harness("FuzzRendering", ["MailFormat"]),
        // RelaxedCanonicalization.swift from DKIM (which otherwise needs OpenSSL).
        harness("FuzzDKIMCanon", []),
    ],
    swiftLanguageModes: [.v6]
)
