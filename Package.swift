// swift-tools-version:6.0
// Tessera: a text-to-image generator of the DALL-E family that trains and runs on a CPU.
// Targets and their direction of dependency are described in the README and DESIGN.md.
import PackageDescription

// Release builds target Haswell (AVX2, FMA, F16C, BMI2; x86-64-v3): the baseline x86-64 that Swift
// picks by default leaves element-wise loops on SSE2. The README records the measured effect.
let fastMath: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell"], .when(configuration: .release)),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "Tessera",
    products: [
        .executable(name: "tessera", targets: ["tessera"]),
        .library(name: "TesseraTensor", targets: ["TesseraTensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CPNG", pkgConfig: "libpng16",
            providers: [.apt(["libpng-dev", "zlib1g-dev"])]),
        .target(name: "TesseraKernels", dependencies: ["COpenBLAS"], swiftSettings: fastMath),
        .target(name: "TesseraAttention", dependencies: ["TesseraKernels"], swiftSettings: fastMath),
        .target(name: "TesseraTensor", dependencies: ["TesseraKernels", "TesseraAttention"], swiftSettings: fastMath),
        .target(name: "TesseraImage", dependencies: ["CPNG", "TesseraTensor"], swiftSettings: fastMath),
        .target(name: "TesseraText", dependencies: ["TesseraTensor"], swiftSettings: fastMath),
        .target(
            name: "TesseraData", dependencies: ["TesseraImage", "TesseraText", "TesseraTensor"],
            swiftSettings: fastMath),
        .target(
            name: "TesseraModels", dependencies: ["TesseraData", "TesseraImage", "TesseraTensor", "TesseraKernels"],
            swiftSettings: fastMath),
        .target(
            name: "TesseraEval", dependencies: ["COpenBLAS", "TesseraTensor", "TesseraData", "TesseraImage"],
            swiftSettings: fastMath),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "TesseraKernels", "TesseraAttention", "TesseraTensor", "TesseraImage", "TesseraText",
                "TesseraData", "TesseraModels", "TesseraEval", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: fastMath),
        .target(name: "TesseraTestSupport", dependencies: ["TesseraKernels", "TesseraTensor"]),
        .testTarget(
            name: "TesseraKernelsTests", dependencies: ["TesseraKernels", "TesseraTestSupport"]),
        .testTarget(
            name: "TesseraAttentionTests",
            dependencies: ["TesseraAttention", "TesseraTensor", "TesseraTestSupport"]),
        .testTarget(
            name: "TesseraTensorTests", dependencies: ["TesseraTensor", "TesseraTestSupport"]),
        .testTarget(name: "TesseraImageTests", dependencies: ["TesseraImage", "CPNG"]),
        .testTarget(name: "TesseraTextTests", dependencies: ["TesseraText"]),
        .testTarget(name: "TesseraDataTests", dependencies: ["TesseraData", "TesseraText"]),
        .testTarget(
            name: "TesseraModelsTests", dependencies: ["TesseraModels", "TesseraData", "TesseraKernels", "TesseraTestSupport"]),
        .testTarget(name: "TesseraEvalTests", dependencies: ["TesseraEval", "TesseraTensor"]),
        .testTarget(name: "TesseraCLITests", dependencies: ["tessera", "TesseraImage", "TesseraTensor"]),
    ]
)
