// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "peerd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "peerd", targets: ["peerd"]),
        .library(name: "ICE", targets: ["ICE"]),
        .library(name: "DTLS", targets: ["DTLS"]),
        .library(name: "RTP", targets: ["RTP"]),
        .library(name: "SDP", targets: ["SDP"]),
        .library(name: "Signaling", targets: ["Signaling"]),
        .library(name: "PeerConnection", targets: ["PeerConnection"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    ],
    targets: [
        // C system libraries, found through pkg-config.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSRTP", pkgConfig: "libsrtp2", providers: [.apt(["libsrtp2-dev"])]),
        .systemLibrary(name: "COpus", pkgConfig: "opus", providers: [.apt(["libopus-dev"])]),
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        // What Swift cannot import: OpenSSL macros, opus_*_ctl requests, ALSA's error handler.
        // Also libsrtp2's cipher and HMAC types on OpenSSL (srtp_openssl.c).
        .target(name: "CShims", dependencies: ["COpenSSL", "CSRTP", "COpus", "CALSA"]),
        // glibc's heap figures (mallinfo2), which the Glibc module does not import.
        .target(name: "CMemory"),

        // Ring 1 + 2: wire codecs and sans-IO cores.
        .target(name: "Wire", swiftSettings: strict),
        .target(
            name: "ICE",
            dependencies: [
                "Wire", "COpenSSL", "CShims",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        .target(name: "DTLS", dependencies: ["Wire", "COpenSSL", "CSRTP", "CShims"], swiftSettings: strict),
        .target(name: "RTP", dependencies: ["Wire", "COpus", "CALSA", "CShims"], swiftSettings: strict),
        .target(name: "SDP", swiftSettings: strict),
        .target(
            name: "Signaling",
            dependencies: [
                "Wire",
                "CMemory",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Web")],
            swiftSettings: strict
        ),
        // JSEP and the peer connection: composes ICE, DTLS-SRTP and RTP (embeddable without the CLI).
        .target(
            name: "PeerConnection",
            dependencies: ["Wire", "SDP", "ICE", "DTLS", "RTP", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),

        // Ring 3: the headless peer.
        .executableTarget(
            name: "peerd",
            dependencies: [
                "Wire", "ICE", "DTLS", "RTP", "SDP", "Signaling", "PeerConnection", "CShims", "CSRTP", "COpus", "CALSA", "COpenSSL",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Fuzz entry points (libFuzzer when built with -sanitize=fuzzer -DFUZZING; a corpus replayer otherwise).
        .target(name: "CFuzzSupport"),
        .executableTarget(name: "peerd-fuzz", dependencies: ["ICE", "RTP", "SDP", "CFuzzSupport"], path: "Fuzz/peerd-fuzz"),
        // Benchmarks: `swift run -c release peerd-bench`.
        .executableTarget(name: "peerd-bench", dependencies: ["Wire", "ICE", "DTLS", "RTP", "SDP", "PeerConnection", "CMemory"], path: "Benchmarks/peerd-bench"),
        // Media receive load: `swift run -c release peerd-load sweep` (N sending peers at one receiving peerd).
        .target(name: "CLoadInject", path: "Benchmarks/CLoadInject"),
        .executableTarget(
            name: "peerd-load",
            dependencies: [
                "Wire", "ICE", "DTLS", "RTP", "SDP", "PeerConnection", "CLoadInject",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            path: "Benchmarks/peerd-load",
            exclude: ["aiortc_receiver.py", "first_audio.py"]
        ),
        // Room server load: `swift run -c release signaling-load -- --clients 1000 --rooms 50`.
        .executableTarget(
            name: "signaling-load",
            dependencies: [
                "Signaling", "Wire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Benchmarks/signaling-load"
        ),

        .testTarget(name: "WireTests", dependencies: ["Wire"]),
        .testTarget(
            name: "PeerdTests",
            dependencies: ["peerd", "ICE", "Signaling", "PeerConnection", "RTP", "SDP", .product(name: "Logging", package: "swift-log"), .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "MetricsTestKit", package: "swift-metrics")]
        ),
        .testTarget(name: "ICETests", dependencies: ["ICE", .product(name: "NIOPosix", package: "swift-nio")]),
        .testTarget(name: "DTLSTests", dependencies: ["DTLS", "Wire", "COpenSSL", "CSRTP", "CShims"]),
        .testTarget(name: "RTPTests", dependencies: ["RTP", "COpus"]),
        .testTarget(name: "SDPTests", dependencies: ["SDP"]),
        .testTarget(
            name: "SignalingTests",
            dependencies: [
                "Signaling", "Wire",
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .testTarget(
            name: "PeerConnectionTests",
            dependencies: ["PeerConnection", "SDP", "ICE", "DTLS", "RTP", "Wire", .product(name: "NIOPosix", package: "swift-nio")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
